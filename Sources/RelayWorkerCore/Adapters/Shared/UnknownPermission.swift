/// The `error` an answer to no pending permission request gets (a stale, repeated or invented id):
/// told, not silently dropped. The id is echoed shortened, never as a whole client string.
enum UnknownPermission {
    static func message(_ id: String) -> String {
        let shown = id.count > 64 ? String(id.prefix(64)) + "…" : id
        return "No pending permission request with id '\(shown)'"
    }
}
