/// Retry delays that double from `first` up to `cap`, and start over after a success: a lost engine is
/// retried quickly at first, then without hammering it (docs/protocol.md, "Faults").
struct Backoff: Sendable {
    let first: Duration
    let cap: Duration
    private var current: Duration?

    init(first: Duration, cap: Duration) {
        self.first = first
        self.cap = cap
    }

    mutating func next() -> Duration {
        let delay = current.map { min($0 * 2, cap) } ?? first
        current = delay
        return delay
    }

    mutating func reset() { current = nil }
}
