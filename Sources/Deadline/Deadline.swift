/// Thrown by ``withTimeout(_:orThrow:clock:_:)`` when the operation did not finish in time.
public struct TimeoutError: Error, CustomStringConvertible {
    public let after: Duration
    public init(after: Duration) { self.after = after }
    public var description: String { "timed out after \(after)" }
}

/// Runs `operation`, cancelling it when it takes longer than `timeout` on `clock`; then throws
/// `error`, or a ``TimeoutError`` when none is given. The operation must honour cancellation: the
/// call returns only once it has ended. The one timeout helper of worker and controller.
public func withTimeout<T: Sendable, C: Clock>(
    _ timeout: Duration, orThrow error: (any Error)? = nil, clock: C = ContinuousClock(),
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T where C.Duration == Duration {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await clock.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        // The first child to end decides: a value, the operation's error, or the timer (nil).
        guard let first = try await group.next(), let value = first else {
            throw error ?? TimeoutError(after: timeout)
        }
        return value
    }
}
