import Synchronization

@testable import LabCtrlCore

/// A clock that moves only when a test says so: ``advance(by:)`` wakes, in deadline order, every sleeper
/// whose deadline it reaches. Its instants are `ContinuousClock` instants (as ``HubClock`` needs), from a
/// fixed origin taken at creation.
final class ManualClock: Clock, Sendable {
    typealias Instant = ContinuousClock.Instant

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: Instant
        var next = 0
        var sleepers: [Int: Sleeper] = [:]
        /// Sleeps cancelled before they were registered.
        var cancelled: Set<Int> = []
        /// Tests waiting until the sleepers satisfy a condition.
        var watchers: [(condition: Condition, continuation: CheckedContinuation<Void, Never>)] = []

        /// The waiting watchers whose condition holds, removed.
        mutating func satisfied() -> [CheckedContinuation<Void, Never>] {
            let ready = watchers.filter { $0.condition.holds(sleepers) }.map(\.continuation)
            watchers.removeAll { $0.condition.holds(sleepers) }
            return ready
        }
    }
    private enum Condition {
        /// At least this many sleepers.
        case count(Int)
        /// A sleeper with exactly this deadline.
        case deadline(Instant)

        func holds(_ sleepers: [Int: Sleeper]) -> Bool {
            switch self {
            case .count(let n): sleepers.count >= n
            case .deadline(let d): sleepers.values.contains { $0.deadline == d }
            }
        }
    }
    private let state: Mutex<State>
    let origin: Instant

    init() {
        let start = ContinuousClock.now
        origin = start
        state = Mutex(State(now: start))
    }

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }
    var hub: HubClock { HubClock(self) }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { s in
            s.next += 1
            return s.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let (resume, watchers): (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) = state.withLock { s in
                    if s.cancelled.remove(id) != nil { return (.failure(CancellationError()), []) }
                    if deadline <= s.now { return (.success(()), []) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    return (nil, s.satisfied())
                }
                if let resume { c.resume(with: resume) }
                for w in watchers { w.resume() }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { s in
                if let sl = s.sleepers.removeValue(forKey: id) { return sl }
                s.cancelled.insert(id)
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes the sleepers whose deadline has come.
    func advance(by duration: Duration) {
        let due: [Sleeper] = state.withLock { s in
            s.now += duration
            let due = s.sleepers.filter { $0.value.deadline <= s.now }
            for key in due.keys { s.sleepers[key] = nil }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for s in due { s.continuation.resume() }
    }

    /// Returns once at least `count` sleepers wait on this clock (so an advance cannot come too early).
    func waitForSleepers(_ count: Int = 1) async { await waitFor(.count(count)) }

    /// Returns once something sleeps until exactly `deadline` (the reaper planned that wake-up).
    func waitForSleeper(until deadline: Instant) async { await waitFor(.deadline(deadline)) }

    private func waitFor(_ condition: Condition) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if condition.holds(s.sleepers) { return true }
                s.watchers.append((condition, c))
                return false
            }
            if now { c.resume() }
        }
    }

    /// The deadlines of the current sleepers, earliest first.
    var sleeperDeadlines: [Instant] { state.withLock { $0.sleepers.values.map(\.deadline).sorted() } }

    /// Time since the origin, for readable expectations.
    var elapsed: Duration { now - origin }
}
