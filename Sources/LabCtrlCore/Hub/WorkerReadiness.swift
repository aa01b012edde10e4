import Logging

/// How the hub learns that a started worker answers: a real WebSocket upgrade (``ReadinessProbe``) in
/// production, whatever a test's fake backend says in tests.
public struct WorkerReadiness: Sendable {
    /// Returns once the worker at the address answers; throws when `stillAlive` says it is gone or the
    /// timeout passes. `onSlow` is called after each slow interval without an answer.
    typealias Wait = @Sendable (
        _ address: WorkerAddress, _ timeout: Duration, _ slowInterval: Duration, _ stillAlive: @escaping @Sendable () async -> Bool,
        _ onSlow: @escaping @Sendable (Duration) -> Void, _ logger: Logger
    ) async throws -> Void
    let wait: Wait

    init(_ wait: @escaping Wait) { self.wait = wait }

    public static let probe = WorkerReadiness { address, timeout, slowInterval, stillAlive, onSlow, logger in
        try await ReadinessProbe.waitUntilReady(
            address, timeout: timeout, slowInterval: slowInterval, stillAlive: stillAlive, onSlow: onSlow, logger: logger)
    }
}
