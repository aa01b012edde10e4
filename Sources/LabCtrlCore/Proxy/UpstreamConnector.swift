import Deadline
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// Opens the WebSocket to a worker on the *same event loop* as the user's socket, so the relay between
/// the two never crosses threads. The worker's frames go to an ``UpstreamSideHandler`` of `relay`.
enum UpstreamConnector {
    struct UpgradeRefused: Error, CustomStringConvertible {
        let status: HTTPResponseStatus?
        var description: String { "the worker refused the WebSocket upgrade\(status.map { " (\($0.code))" } ?? "")" }
    }

    /// The worker accepted the TCP connection but never answered the upgrade: it is hung, not gone.
    struct NoAnswer: Error, CustomStringConvertible {
        var description: String { "the worker accepted the connection but did not answer the upgrade" }
    }

    enum Outcome: Sendable {
        case upgraded(any Channel)
        case refused(HTTPResponseStatus?)
    }

    static func connect(_ address: WorkerAddress, relay: FrameRelay, maxFrameSize: Int, timeout: Duration) async throws -> any Channel {
        let loop = relay.eventLoop
        let opened = Mutex<(any Channel)?>(nil)
        let upgrade: EventLoopFuture<Outcome> = try await ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(timeout.secondsDouble * 1e9)))
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)  // IPPROTO_TCP level (socketOption would set SO_DEBUG)
            .connect(host: address.host, port: address.port) { channel in
                opened.withLock { $0 = channel }
                return channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<Outcome>(
                        maxFrameSize: maxFrameSize,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(UpstreamSideHandler(relay: relay))
                                try channel.pipeline.syncOperations.addHandler(RawWriteHandler(), position: .first)
                                return Outcome.upgraded(channel)
                            }
                        })
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "\(address.host):\(address.port)")
                    headers.add(name: "Content-Length", value: "0")
                    headers.add(name: "Authorization", value: address.authorization)
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration<Outcome>(
                        upgradeRequestHead: head, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture { Outcome.refused(nil) }
                        })
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(upgradeConfiguration: configuration))
                }
            }
        let outcome: Outcome
        do {
            outcome = try await withTimeout(timeout, { try await upgrade.get() })
        } catch {
            // A socket that connected but never finished the upgrade must not linger.
            guard let channel = opened.withLock({ $0 }) else { throw error }
            let connected = channel.isActive
            try? await channel.close()
            throw error is TimeoutError && connected ? NoAnswer() : error
        }
        switch outcome {
        case .upgraded(let channel):
            return channel
        case .refused(let status):
            if let channel = opened.withLock({ $0 }) { try? await channel.close() }
            throw UpgradeRefused(status: status)
        }
    }
}
