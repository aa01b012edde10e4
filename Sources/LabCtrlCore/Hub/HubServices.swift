import Logging
import ServiceLifecycle

/// Runs a reaper pass every `LAB_REAPER_INTERVAL_SECS` until graceful shutdown.
struct ReaperService: Service {
    let hub: WorkerHub
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
            await hub.reapPass()
        }
        logger.debug("reaper stopped")
    }
}

/// Follows the backend's death notifications (Docker events, child exits) into the hub.
struct DeathWatcherService: Service {
    let backend: any WorkerBackend
    let hub: WorkerHub
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown {
                    try await backend.watchDeaths { death in await hub.workerDied(death) }
                }
                // The stream ended without an error (engine restarting?): subscribe again, without spinning.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch is CancellationError {
                break
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                logger.error("worker event stream failed; retrying", metadata: ["error": "\(error)"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            }
        }
    }
}

/// On graceful shutdown closes client sockets and lets the backend finish — the first service to stop
/// (it is last in the service list).
struct HubLifecycleService: Service {
    let hub: WorkerHub
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        await hub.shutdown()
    }
}
