import Logging
import ServiceLifecycle

/// Reaps at the next deadline (docs/protocol.md, "idle"): after each pass it sleeps on the hub's clock
/// until the earliest deadline the pass reported (plus the policy's slack, so bursts coalesce), at most
/// `LAB_REAPER_INTERVAL_SECS` (housekeeping the hub cannot see, e.g. an updated worker image), or until
/// the hub says a deadline may have moved earlier.
struct ReaperService: Service {
    let hub: WorkerHub
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let clock = hub.clock
        let policy = hub.settings.policy
        let inbox = hub.inbox
        var wakes = hub.reaperWakes.makeAsyncIterator()
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let deadlines: [HubClock.Instant] = await hub.reapPass()
            let wake: HubClock.Instant = policy.wakeTime(deadlines, now: clock.now, housekeeping: interval)
            // The timer and graceful shutdown signal the same stream as the hub, so one `next()` waits
            // for whichever comes first; nil means the hub shut down.
            let woken: Void? = await withGracefulShutdownHandler {
                await withTaskGroup(of: Void.self, returning: Void?.self) { group in
                    group.addTask {
                        // Only the timer's expiry is a wake-up: a cancelled sleep (the group ending) is not.
                        guard (try? await clock.sleep(until: wake, tolerance: policy.slack)) != nil else { return }
                        inbox.reaper.yield()
                    }
                    let next: Void? = await wakes.next()
                    group.cancelAll()
                    return next
                }
            } onGracefulShutdown: {
                inbox.reaper.yield()
            }
            if woken == nil {
                // The hub shut down first (its service stops before this one): a service that returns
                // before it is told to stop fails the whole group, so wait for our turn.
                try? await gracefulShutdown()
                break
            }
        }
        logger.debug("reaper stopped")
    }
}

/// Follows the backend's incidents (Docker events, child exits) into the hub.
struct DeathWatcherService: Service {
    let backend: any WorkerBackend
    let hub: WorkerHub
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown {
                    try await backend.watchIncidents { incident in await hub.incident(incident) }
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

/// Runs the hub; on graceful shutdown closes client sockets and lets the backend finish — the first service to stop
/// (it is last in the service list).
struct HubLifecycleService: Service {
    let hub: WorkerHub
    let logger: Logger

    func run() async throws {
        await withDiscardingTaskGroup { group in
            // The hub's own work (bring-ups, voided warnings); it ends when `shutdown()` closes its inbox.
            group.addTask { await hub.run() }
            try? await gracefulShutdown()
            await hub.shutdown()
        }
    }
}

/// Calls `pass` every `interval` until graceful shutdown or cancellation (the periodic services).
func runEvery(_ interval: Duration, _ pass: () async -> Void) async {
    while !Task.isShuttingDownGracefully, !Task.isCancelled {
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        } catch {
            return
        }
        await pass()
    }
}
