import Synchronization

/// Progress of one start, delivered to every client waiting for it (in order, synchronously).
final class ProgressFanout: Sendable {
    private struct State {
        var next = 0
        var sinks: [Int: @Sendable (LabProgress) -> Void] = [:]
        var history: [LabProgress] = []
    }
    private let state = Mutex(State())

    /// Adds a sink; it first receives the steps already emitted.
    func subscribe(_ sink: @escaping @Sendable (LabProgress) -> Void) -> Int {
        let (token, history) = state.withLock { s in
            s.next += 1
            s.sinks[s.next] = sink
            return (s.next, s.history)
        }
        for p in history { sink(p) }
        return token
    }

    func unsubscribe(_ token: Int) { state.withLock { _ = $0.sinks.removeValue(forKey: token) } }

    func emit(_ p: LabProgress) {
        let sinks = state.withLock { s in
            s.history.append(p)
            return Array(s.sinks.values)
        }
        for sink in sinks { sink(p) }
    }
}
