import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// Builds the worker's WebSocket server. Any path is accepted, as in the reference.
public func buildWorkerApplication(
    options: WorkerOptions,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let registry = AdapterRegistry(options: options)
    let session = Session(options: options, registry: registry, logger: logger)
    let wsRouter = Router(context: BasicWebSocketRequestContext.self)
    for path in ["/", "**"] {
        wsRouter.ws(RouterPath(path)) { _, _ in
            .upgrade([:])
        } onUpgrade: { inbound, outbound, _ in
            await session.serve(inbound: inbound, outbound: outbound)
        }
    }
    let httpRouter = Router()
    httpRouter.get("/healthz") { _, _ in "ok" }
    return Application(
        router: httpRouter,
        server: .http1WebSocketUpgrade(
            webSocketRouter: wsRouter,
            configuration: .init(
                ws: .init(
                    // A single frame over the cap is refused from its header (close 1009) before
                    // it is read; `MessageReader` enforces the same cap on fragmented messages.
                    maxFrameSize: options.maxMessageBytes,
                    autoPing: .enabled(timePeriod: .seconds(20)),
                    closeTimeout: .seconds(10)
                )
            )
        ),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? options.port) },
        logger: logger
    )
}
