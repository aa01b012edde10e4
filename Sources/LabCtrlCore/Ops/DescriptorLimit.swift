#if canImport(Glibc)
import Glibc
#endif

/// The controller's open-file budget. Each proxied connection holds two sockets (the user's and the
/// worker's), so on a small machine the descriptor limit, not memory, caps connections: the cap is
/// derived from it, and a connection past it gets HTTP 429 instead of an `accept` that fails with EMFILE.
struct DescriptorLimit: Equatable {
    var soft: Int
    var hard: Int

    /// Kept back for the listener, logs, the Docker client, token reloads and worker pipes.
    static let reserve = 64

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (no privilege needed) and returns the result.
    static func raise() -> DescriptorLimit {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return DescriptorLimit(soft: 1024, hard: 1024) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return DescriptorLimit(soft: Int(clamping: limit.rlim_cur), hard: Int(clamping: limit.rlim_max))
    }

    /// Proxied connections that fit: two descriptors each, after the reserve and the sockets still
    /// waiting for their request head (`LAB_MAX_PENDING_CONNECTIONS`).
    func connectionCapacity(pending: Int) -> Int { max(1, (soft - Self.reserve - max(0, pending)) / 2) }

    /// `LAB_MAX_CONNECTIONS` (0: no cap of its own) bounded by the capacity.
    func connectionCap(configured: Int, pending: Int) -> Int {
        let capacity = connectionCapacity(pending: pending)
        return configured == 0 ? capacity : min(configured, capacity)
    }
}
