import Deadline
import HummingbirdWSClient
import Logging

/// "Readiness, not sleep": after start, the worker is probed with a real WebSocket upgrade
/// (then closed before any handshake, which a relay treats as a client that left) with short back-off,
/// bounded by `LAB_CONTAINER_WS_TIMEOUT`.
enum ReadinessProbe {
    /// Returns once the worker completes a WebSocket upgrade. Throws ``WorkerStartError`` when the
    /// deadline passes or `stillAlive` says the worker is gone. `onSlow` is called after each
    /// `slowInterval` without success (the hub turns it into `lab.waiting`).
    static func waitUntilReady(
        _ address: WorkerAddress,
        timeout: Duration,
        slowInterval: Duration,
        stillAlive: @escaping @Sendable () async -> Bool,
        onSlow: @escaping @Sendable (Duration) -> Void,
        logger: Logger
    ) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + timeout
        var nextSlow = start + slowInterval
        var delay = Duration.milliseconds(5)
        var attempts = 0
        while true {
            attempts += 1
            let remaining = deadline - clock.now
            if await attempt(address, timeout: min(.seconds(2), max(remaining, .milliseconds(50))), logger: logger) {
                logger.debug("worker ready", metadata: ["address": "\(address)", "attempts": "\(attempts)", "after": "\(clock.now - start)"])
                return
            }
            guard await stillAlive() else { throw WorkerStartError("the worker stopped while starting") }
            let now = clock.now
            if now >= deadline {
                throw WorkerStartError("the worker did not answer within \(timeout.secondsDouble) s")
            }
            if slowInterval > .zero, now >= nextSlow {
                onSlow(now - start)
                nextSlow = now + slowInterval
            }
            try await Task.sleep(for: min(delay, deadline - now))
            delay = min(delay * 2, .milliseconds(100))
        }
    }

    /// One upgrade attempt; true if the worker answered it.
    static func attempt(_ address: WorkerAddress, timeout: Duration, logger: Logger) async -> Bool {
        var quiet = logger
        quiet.logLevel = .critical
        let log = quiet
        do {
            try await withTimeout(timeout) {
                _ = try await WebSocketClient.connect(
                    url: address.url, configuration: .init(additionalHeaders: [.authorization: address.authorization], closeTimeout: .seconds(1)),
                    logger: log
                ) { _, _, _ in }
            }
            return true
        } catch {
            logger.trace("worker not ready yet", metadata: ["address": "\(address)", "error": "\(error)"])
            return false
        }
    }
}
