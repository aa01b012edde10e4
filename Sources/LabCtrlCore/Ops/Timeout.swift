/// Thrown by ``withTimeout(_:_:)`` when the operation did not finish in time.
public struct TimeoutError: Error, CustomStringConvertible {
    public let after: Duration
    public var description: String { "timed out after \(after)" }
}

/// Runs `operation`, cancelling it after `timeout`. The operation must honour cancellation.
func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        while let next = try await group.next() {
            if let value = next { return value }
            throw TimeoutError(after: timeout)
        }
        throw TimeoutError(after: timeout)
    }
}

extension Duration {
    /// A `Duration` from seconds given as `Double` (config values).
    static func seconds(double s: Double) -> Duration { .nanoseconds(Int64((s * 1e9).rounded())) }

    var secondsDouble: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
