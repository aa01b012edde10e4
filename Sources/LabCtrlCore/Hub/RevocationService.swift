import Deadline
import Logging
import ServiceLifecycle

/// Every `LAB_TOKENS_RELOAD_SECS`: reloads the tokens file, then re-checks the credential of every open
/// client WebSocket. A token removed from the file (or reassigned), a JWT past `exp`, a file gone
/// missing (fail closed): the socket gets an `error` event and close 1008 — within one period.
struct RevocationService: Service {
    let auth: Authenticator
    let registry: ConnectionRegistry
    let metrics: LabMetrics
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await runEvery(interval) { _ = await pass() }
    }

    /// One reload and re-check; returns how many sockets were closed.
    @discardableResult
    func pass() async -> Int {
        auth.reloadTokens()
        var closing: [(ConnectionRegistry.Closer, String)] = []
        for c in registry.snapshot() {
            let why: String
            switch await auth.authenticate(c.token) {
            case .success(let user) where user == c.user:
                continue
            case .success:
                why = "revoked"
            case .failure(.expired):
                why = "expired"
            case .failure:
                why = "revoked"
            }
            metrics.connectionRevoked(why)
            logger.notice("closing a socket whose credential no longer holds", metadata: ["user": "\(c.user)", "reason": "\(why)"])
            if let closer = registry.revoke(c.id, why: why) { closing.append((closer, why)) }
        }
        guard !closing.isEmpty else { return 0 }
        let toClose = closing
        // Bounded: a client that does not read cannot hold up the next pass.
        _ = try? await withTimeout(.seconds(5)) {
            await withTaskGroup(of: Void.self) { group in
                for (closer, why) in toClose { group.addTask { await closer(why) } }
            }
        }
        return toClose.count
    }

    /// The `error` event text for a closed session.
    static func message(_ why: String) -> String {
        why == "expired"
            ? "Your session token expired. Sign in again to continue; your files are kept."
            : "Your access to this lab was revoked."
    }
}
