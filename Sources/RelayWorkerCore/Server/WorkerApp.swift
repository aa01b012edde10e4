import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import RelayProtocol
import ServiceLifecycle
import WebSocketServerChannel

/// Builds the worker's WebSocket server. Any path is accepted, as in the reference; every request, upgrade
/// or not, must pass ``WorkerAccess`` (token, Origin). Sessions live in `directory`, which runs as a
/// service of its own (``runWorker(options:logger:onServerRunning:)``).
public func buildWorkerApplication(
    options: WorkerOptions,
    directory: SessionDirectory,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let registry = AdapterRegistry(options: options)
    let session = Connection(options: options, registry: registry, directory: directory, logger: logger)
    let access = WorkerAccess(token: options.accessToken, allowedOrigins: options.allowedOrigins)
    let httpRouter = Router()
    httpRouter.add(middleware: WorkerAccessMiddleware(access: access))
    httpRouter.get("/healthz") { _, _ in "ok" }
    httpRouter.get("/sessions") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: directory.listing().encoded())))
    }
    return Application(
        router: httpRouter,
        server: .webSocketServer(
            configuration: .init(
                ws: .init(
                    // A single frame over the cap is refused from its header (close 1009) before
                    // it is read; `MessageReader` enforces the same cap on fragmented messages.
                    maxFrameSize: options.maxMessageBytes,
                    autoPing: .enabled(timePeriod: .seconds(20)),
                    closeTimeout: .seconds(10)
                )
            ),
            decide: { head, _, logger in
                switch access.check(head.headerFields) {
                case .allowed:
                    return .upgrade { _ in
                        { inbound, outbound, _ in await session.serve(inbound: inbound, outbound: outbound) }
                    }
                case .unauthorized:
                    logger.notice("worker: upgrade refused: missing or wrong token", metadata: ["path": .client(head.path ?? "")])
                    return .refuse(UpgradeRefusal(.unauthorized, "a valid worker token is required\n"))
                case .foreignOrigin(let origin):
                    logger.notice(
                        "worker: upgrade refused: foreign Origin", metadata: ["path": .client(head.path ?? ""), "origin": .client(origin)])
                    return .refuse(UpgradeRefusal(.forbidden, "this Origin is not allowed\n"))
                }
            }
        ),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? options.port) },
        logger: logger
    )
}

/// Runs the worker: its sessions and its server. On SIGTERM/SIGINT the sessions end first (each agent
/// stopped, each client sent its `session_end`), then the server stops.
public func runWorker(options: WorkerOptions, logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
    let directory = SessionDirectory(options: options, logger: logger)
    let app = buildWorkerApplication(options: options, directory: directory, logger: logger, onServerRunning: onServerRunning)
    // A service group shuts down in reverse order: the directory (last) before the server.
    let group = ServiceGroup(
        configuration: .init(services: [app, directory], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}
