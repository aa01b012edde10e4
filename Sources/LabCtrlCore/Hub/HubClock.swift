/// The hub's and the reaper's time: `ContinuousClock` in production, a manual clock in tests.
///
/// A type-erased `Clock` whose instants are `ContinuousClock.Instant`, so the activity the proxy records
/// (``ConnectionActivity``) and the reaping rules (``ReaperPolicy``) compare with it directly.
public struct HubClock: Clock {
    public typealias Instant = ContinuousClock.Instant

    private let readNow: @Sendable () -> Instant
    private let sleeper: @Sendable (Instant, Duration?) async throws -> Void
    public let minimumResolution: Duration

    public init<C: Clock>(_ clock: C) where C.Instant == ContinuousClock.Instant {
        readNow = { clock.now }
        sleeper = { try await clock.sleep(until: $0, tolerance: $1) }
        minimumResolution = clock.minimumResolution
    }

    public static var continuous: HubClock { HubClock(ContinuousClock()) }

    public var now: Instant { readNow() }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try await sleeper(deadline, tolerance)
    }
}
