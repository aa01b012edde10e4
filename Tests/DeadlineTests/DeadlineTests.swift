import Deadline
import Synchronization
import Testing

/// The one timeout helper: the first of operation and timer decides, and the operation has ended
/// (cancelled when late) by the time the call returns.
@Suite struct DeadlineTests {
    struct Boom: Error, Equatable {}

    /// A clock whose every sleep is over at once: with it, any operation that waits is too late.
    struct ImmediateClock: Clock {
        typealias Instant = ContinuousClock.Instant
        var now: Instant { ContinuousClock.now }
        var minimumResolution: Duration { .zero }
        func sleep(until deadline: Instant, tolerance: Duration?) async throws { try Task.checkCancellation() }
    }

    /// Set by `waitForCancellation` once its wait was cancelled.
    final class Flag: Sendable {
        private let atomic = Atomic(false)
        func raise() { atomic.store(true, ordering: .relaxed) }
        var raised: Bool { atomic.load(ordering: .relaxed) }
    }

    /// Waits (an hour) until cancelled, then raises `cancelled`.
    static func waitForCancellation(_ cancelled: Flag) async throws -> Int {
        do { try await Task.sleep(for: .seconds(3600)) } catch { cancelled.raise() }
        throw CancellationError()
    }

    @Test func aValueInTime() async throws {
        #expect(try await withTimeout(.seconds(3600)) { 7 } == 7)
    }

    @Test func theOperationsErrorInTime() async {
        await #expect(throws: Boom()) { try await withTimeout(.seconds(3600)) { () async throws -> Int in throw Boom() } }
    }

    // An hour on the immediate clock: the test's time limit catches a helper that ignores the clock.
    @Test(.timeLimit(.minutes(1))) func tooLateCancelsTheOperationAndThrowsTimeoutError() async throws {
        let cancelled = Flag()
        do {
            _ = try await withTimeout(.seconds(3600), clock: ImmediateClock()) { try await Self.waitForCancellation(cancelled) }
            Issue.record("expected a timeout")
        } catch let error as TimeoutError {
            #expect(error.after == .seconds(3600))
            #expect(error.description == "timed out after 3600.0 seconds")
        }
        #expect(cancelled.raised)
    }

    @Test(.timeLimit(.minutes(1))) func tooLateThrowsTheGivenError() async {
        let cancelled = Flag()
        await #expect(throws: Boom()) {
            try await withTimeout(.seconds(3600), orThrow: Boom(), clock: ImmediateClock()) {
                try await Self.waitForCancellation(cancelled)
            }
        }
        #expect(cancelled.raised)
    }
}
