import Synchronization

/// Every open client WebSocket, from its accepted upgrade until its TCP connection closes: the caps
/// (`LAB_MAX_CONNECTIONS_PER_USER`, `LAB_MAX_CONNECTIONS`) and the credential each one was opened with,
/// so revoked tokens and expired JWTs can be found and closed (``RevocationService``).
///
/// Admission is checked before the upgrade (a refusal is HTTP 429); the slot is released by the channel's
/// close future, which fires exactly once whatever path the connection took.
public final class ConnectionRegistry: Sendable {
    public let maxPerUser: Int
    public let maxTotal: Int

    /// How a session is closed when its credential no longer holds.
    public typealias Closer = @Sendable (_ why: String) async -> Void

    struct Entry {
        var user: UserID
        var token: String
        var closer: Closer?
        /// Set when the credential failed before the session installed its closer.
        var revoked: String?
    }
    private struct State {
        var next = 0
        var entries: [Int: Entry] = [:]
        var perUser: [UserID: Int] = [:]
    }
    private let state = Mutex(State())

    public init(maxPerUser: Int, maxTotal: Int) {
        self.maxPerUser = maxPerUser
        self.maxTotal = maxTotal
    }

    public enum Refusal: String, Error, Sendable {
        case perUser = "per_user"
        case total

        public var message: String {
            switch self {
            case .perUser: "too many open connections for this user; close one and retry"
            case .total: "the lab is at its connection limit; try again later"
            }
        }
    }

    /// Takes a slot for `user`, or says which cap is full.
    public func admit(_ user: UserID, token: String) -> Result<Int, Refusal> {
        state.withLock { s in
            if maxTotal > 0, s.entries.count >= maxTotal { return .failure(.total) }
            let mine = s.perUser[user, default: 0]
            if maxPerUser > 0, mine >= maxPerUser { return .failure(.perUser) }
            s.next += 1
            s.entries[s.next] = Entry(user: user, token: token)
            s.perUser[user] = mine + 1
            return .success(s.next)
        }
    }

    public func release(_ id: Int) {
        state.withLock { s in
            guard let e = s.entries.removeValue(forKey: id) else { return }
            let left = s.perUser[e.user, default: 1] - 1
            s.perUser[e.user] = left > 0 ? left : nil
        }
    }

    /// The session's way to close itself. Returns the revocation reason if one came first (the caller
    /// then closes right away).
    public func setCloser(_ id: Int, _ closer: @escaping Closer) -> String? {
        state.withLock { s in
            s.entries[id]?.closer = closer
            return s.entries[id]?.revoked
        }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    public func count(of user: UserID) -> Int { state.withLock { $0.perUser[user, default: 0] } }

    /// The open connections and their credentials, for a revocation pass.
    func snapshot() -> [(id: Int, user: UserID, token: String)] {
        state.withLock { s in s.entries.filter { $0.value.revoked == nil }.map { ($0.key, $0.value.user, $0.value.token) } }
    }

    /// Marks `id` revoked and returns its closer (nil if the session has not installed one yet; it then
    /// finds the mark in ``setCloser(_:_:)``).
    func revoke(_ id: Int, why: String) -> Closer? {
        state.withLock { s in
            guard s.entries[id] != nil else { return nil }
            s.entries[id]?.revoked = why
            return s.entries[id]?.closer
        }
    }
}
