import HTTPTypes
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
// `WebSocketHandler` (pings, the close handshake) is the one hummingbird-websocket runs for its own
// channel; it is published to its sibling packages as SPI.
@_spi(WSInternal) import WSCore

/// An HTTP/1 child channel that can upgrade to a WebSocket, modelled on hummingbird-websocket's
/// `HTTP1WebSocketUpgradeChannel` with two differences:
/// - a refused upgrade is answered with the refusal's own status and reason (``UpgradeRefusal``), not a
///   bare 400, through the connection's HTTP codec;
/// - an accepted upgrade first runs the decision's `install` on the event loop, before any frame is read,
///   so handlers it adds see every frame (nothing is buffered by the framework before them).
/// Requests that do not ask for an upgrade go to Hummingbird's responder.
public struct WebSocketServerChannel: ServerChildChannel, HTTPChannelHandler {
    public typealias Decide = @Sendable (HTTPRequest, any Channel, Logger) async -> UpgradeDecision

    /// The context handed to a session's handler.
    public struct Context: WebSocketContext {
        public let logger: Logger
    }

    enum Outcome: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, WebSocketDataHandler<Context>, Logger)
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, UpgradeRefusal)
    }

    public struct Value: ServerChildChannelValue {
        let outcome: EventLoopFuture<Outcome>
        public let channel: any Channel
    }

    public let responder: HTTPChannelHandler.Responder
    let configuration: HTTP1WebSocketUpgradeChannel.Configuration
    let decide: Decide

    public init(responder: @escaping HTTPChannelHandler.Responder, configuration: HTTP1WebSocketUpgradeChannel.Configuration, decide: @escaping Decide) {
        _ = Self.metadataPrimed
        self.init(unprimed: responder, configuration: configuration, decide: decide)
    }

    private init(unprimed responder: @escaping HTTPChannelHandler.Responder, configuration: HTTP1WebSocketUpgradeChannel.Configuration, decide: @escaping Decide) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.configuration = configuration
        self.decide = decide
    }

    /// Sets one pipeline up on an `EmbeddedChannel`, once, while the server is being built (one thread,
    /// nothing accepted yet). The Swift runtime can crash (a null metadata pointer in
    /// `swift_conformsToProtocol`) when two threads instantiate the same generic type metadata for the
    /// first time at once, which is what the first connections arriving on both event loops together
    /// did in `configureUpgradableHTTPServerPipeline`. After this, that metadata is cached.
    static let metadataPrimed: Void = {
        let channel = EmbeddedChannel()
        let prototype = WebSocketServerChannel(
            unprimed: { _, _, _ in }, configuration: .init(), decide: { _, _, _ in .refuse(UpgradeRefusal(.forbidden, "")) })
        _ = try? prototype.setup(channel: channel, logger: Logger(label: "metadata-priming")).wait()
        _ = try? channel.finish()
    }()

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // Written by the decision and read by the upgrade or the HTTP fallback, all on this loop.
            let decision = NIOLoopBoundBox<UpgradeDecision?>(nil, eventLoop: channel.eventLoop)
            let decide = self.decide
            let upgrader = NIOTypedWebSocketServerUpgrader<Outcome>(
                maxFrameSize: configuration.ws.maxFrameSize,
                shouldUpgrade: { channel, head in
                    let request: HTTPRequest
                    do {
                        request = try HTTPRequest(head, secure: false, splitCookie: false)
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                    let decided = channel.eventLoop.makePromise(of: UpgradeDecision.self)
                    // The decision is async (token checks); NIO's upgrader wants a future: the same bridge
                    // (one task per upgrade request) as Hummingbird's own channel.
                    decided.completeWithTask { await decide(request, channel, logger) }
                    return decided.futureResult.map { d -> HTTPHeaders? in
                        decision.value = d
                        if case .upgrade = d { return HTTPHeaders() }
                        return nil
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard case .upgrade(let install)? = decision.value else {
                            preconditionFailure("upgrading without an accepted decision")
                        }
                        let handler = try install(channel)
                        let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return Outcome.websocket(asyncChannel, handler, logger)
                    }
                })
            let http1 = configuration.http1
            let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        if case .refuse(let refusal)? = decision.value { return Outcome.refused(asyncChannel, refusal) }
                        return Outcome.http(asyncChannel)
                    }
                })
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration<Outcome>(upgradeConfiguration: serverUpgrade)
            pipeline.enablePipelining = false  // as Hummingbird: NIOAsyncChannel serialises requests
            pipeline.enableErrorHandling = false  // handled by Hummingbird's HTTP handler
            pipeline.enableResponseHeaderValidation = false  // HTTPTypes validate already
            pipeline.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            pipeline.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            pipeline.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let outcome = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            return Value(outcome: outcome, channel: channel)
        }
    }

    public func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.outcome.get() {
            case .http(let http1):
                await handleHTTP(asyncChannel: http1, logger: logger)
            case .refused(let http1, let refusal):
                await Self.answer(http1, with: refusal, logger: logger)
            case .websocket(let asyncChannel, let handler, let logger):
                let ws = configuration.ws
                do {
                    _ = try await WebSocketHandler.handle(
                        type: .server,
                        configuration: .init(
                            extensions: [], autoPing: ws.autoPing, closeTimeout: ws.closeTimeout, validateUTF8: ws.validateUTF8,
                            maxFrameSize: ws.maxFrameSize),
                        asyncChannel: asyncChannel, context: Context(logger: logger), handler: handler)
                } catch {
                    logger.debug("WebSocket handler error", metadata: ["error.type": "\(error)"])
                }
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("upgrade failed: input closed")
        } catch {
            // An unparseable first request, or a connection lost mid-upgrade: the client's doing, and
            // cheap to repeat, so not an error of ours (Hummingbird's HTTP channel logs parse errors so too).
            logger.debug("upgrade failed", metadata: ["error.type": "\(error)"])
        }
    }

    /// Writes the refusal and closes (the request is not read further: it asked for a WebSocket).
    static func answer(_ http1: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, with refusal: UpgradeRefusal, logger: Logger) async {
        do {
            try await http1.executeThenClose { _, outbound in
                try await outbound.write(contentsOf: [.head(refusal.head), .body(ByteBuffer(string: refusal.body)), .end(nil)])
                outbound.finish()
            }
        } catch {
            logger.trace("could not write the refusal", metadata: ["error.type": "\(error)"])
        }
    }

    /// As hummingbird-websocket: an upgrade asked for on a connection that already served a request
    /// cannot be taken (NIO upgrades only the first request), so it is redirected to the same URI on a
    /// new connection.
    static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct RedirectClose: Error {}
        return { request, writer, channel in
            guard request.headers[.upgrade] == "websocket" else {
                try await responder(request, writer, channel)
                return
            }
            var path = request.uri.path
            if let query = request.uri.query { path += "?\(query)" }
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: path]))
            throw RedirectClose()
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with WebSocket upgrades decided by `decide` (``WebSocketServerChannel``).
    public static func webSocketServer(
        configuration: HTTP1WebSocketUpgradeChannel.Configuration, decide: @escaping WebSocketServerChannel.Decide
    ) -> HTTPServerBuilder {
        .init { responder in WebSocketServerChannel(responder: responder, configuration: configuration, decide: decide) }
    }
}
