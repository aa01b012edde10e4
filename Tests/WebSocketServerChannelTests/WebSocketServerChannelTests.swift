import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization
import Testing
import WebSocketServerChannel

/// A real server on a loopback port, spoken to with raw bytes.
@Suite struct WebSocketServerChannelTests {
    static let upgrade = """
        GET /ws HTTP/1.1\r
        Host: localhost\r
        Connection: Upgrade\r
        Upgrade: websocket\r
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
        Sec-WebSocket-Version: 13\r
        \r

        """

    /// Records every log line at `notice` or above.
    final class Loud: Sendable {
        let lines = Mutex<[String]>([])
        func handler(label: String) -> some LogHandler {
            var h = Handler(sink: self)
            h.logLevel = .trace
            return h
        }
        struct Handler: LogHandler {
            let sink: Loud
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                if event.level >= .notice { sink.lines.withLock { $0.append("\(event.level) \(event.message)") } }
            }
        }
    }

    /// Runs an application with `decide` until `body` returns.
    static func withServer(
        loud: Loud, decide: @escaping WebSocketServerChannel.Decide, _ body: @escaping @Sendable (Int) async throws -> Void
    ) async throws {
        let router = Router()
        router.get("/plain") { _, _ in "plain\n" }
        let (ports, port) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, server: .webSocketServer(configuration: .init(), decide: decide),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { port.yield($0.localAddress?.port ?? 0) },
            logger: Logger(label: "test", factory: loud.handler))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            let p = await iterator.next() ?? 0
            try await body(p)
            group.cancelAll()
        }
    }

    /// Sends `bytes`, then reads until the server closes (or `enough` says stop).
    static func exchange(port: Int, _ bytes: [UInt8], enough: @escaping @Sendable (String) -> Bool = { _ in false }) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { ch in
            ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: bytes))
            var text = ""
            for try await chunk in inbound {
                text += String(buffer: chunk)
                if enough(text) { break }
            }
            return text
        }
    }

    @Test func aRefusalIsAnHTTPAnswerWithItsStatusAndNoLoudLog() async throws {
        let loud = Loud()
        try await Self.withServer(loud: loud, decide: { _, _, _ in .refuse(UpgradeRefusal(.unauthorized, "unauthorized\n")) }) { port in
            let answer = try await Self.exchange(port: port, Array(Self.upgrade.utf8))
            #expect(answer.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"))
            let head = answer.lowercased()
            #expect(head.contains("www-authenticate: bearer\r\n"))
            #expect(head.contains("content-type: text/plain; charset=utf-8\r\n"))
            #expect(head.contains("content-length: 13\r\n"))
            #expect(head.contains("connection: close\r\n"))
            #expect(answer.hasSuffix("\r\n\r\nunauthorized\n"))  // then the server closed
            // Taken before the test stops the server (which logs its cancellation).
            #expect(loud.lines.withLock { $0 } == [])
        }
    }

    @Test func otherRefusalsCarryNoAuthChallenge() async throws {
        try await Self.withServer(loud: Loud(), decide: { _, _, _ in .refuse(UpgradeRefusal(.tooManyRequests, "too many\n")) }) { port in
            let answer = try await Self.exchange(port: port, Array(Self.upgrade.utf8))
            #expect(answer.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n"))
            #expect(!answer.lowercased().contains("www-authenticate"))
            #expect(answer.hasSuffix("too many\n"))
        }
    }

    @Test func requestsWithoutAnUpgradeGoToTheRouter() async throws {
        try await Self.withServer(loud: Loud(), decide: { _, _, _ in .refuse(UpgradeRefusal(.forbidden, "no\n")) }) { port in
            let request = "GET /plain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            let answer = try await Self.exchange(port: port, Array(request.utf8))
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(answer.hasSuffix("plain\n"))
        }
    }

    /// Sees the data frames that reach its place in the pipeline.
    final class FirstFrame: ChannelInboundHandler, Sendable {
        typealias InboundIn = WebSocketFrame
        let seen: AsyncStream<String>.Continuation
        init(_ seen: AsyncStream<String>.Continuation) { self.seen = seen }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            if frame.opcode == .text { seen.yield(String(buffer: frame.unmaskedData)) }
            context.fireChannelRead(data)
        }
    }

    @Test func aFrameSentWithTheUpgradeRequestReachesTheInstalledHandler() async throws {
        let (frames, seen) = AsyncStream.makeStream(of: String.self)
        let decide: WebSocketServerChannel.Decide = { _, _, _ in
            .upgrade { channel in
                try channel.pipeline.syncOperations.addHandler(FirstFrame(seen))
                return { inbound, _, _ in for try await _ in inbound {} }
            }
        }
        try await Self.withServer(loud: Loud(), decide: decide) { port in
            // The request and a masked text frame "hi" in one write: the frame is in the server's first
            // read, before the upgrade is decided.
            let key: [UInt8] = [1, 2, 3, 4]
            let frame: [UInt8] = [0x81, 0x82] + key + [UInt8(ascii: "h") ^ 1, UInt8(ascii: "i") ^ 2]
            let answer = try await Self.exchange(port: port, Array(Self.upgrade.utf8) + frame) { $0.contains("\r\n\r\n") }
            #expect(answer.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
            var iterator = frames.makeAsyncIterator()
            #expect(await iterator.next() == "hi")
        }
    }
}
