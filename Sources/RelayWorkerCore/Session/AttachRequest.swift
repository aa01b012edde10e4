import RelayProtocol

/// A first message `{"attach": "<session_id>", "after_seq": N}` (docs/protocol.md §7). Checked as
/// strictly as a handshake: each wrong field is one `error` and a close.
struct AttachRequest: Sendable, Equatable {
    let sessionID: String
    let afterSeq: Int

    struct Invalid: Error, Equatable {
        let message: String
    }

    /// The largest cursor a client may send (a session never gets near it).
    static let maxSeq = Int(Int32.max)

    /// nil: not an attach request (a JSON object without an `attach` key is a handshake).
    static func parse(_ text: String) -> Result<AttachRequest, Invalid>? {
        guard let value = try? JSON.parse(text), case .object(let o) = value,
            let id = o["attach"]
        else { return nil }
        guard let sid = id.stringValue, !sid.isEmpty, sid.utf8.count <= 256, !sid.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else {
            return .failure(Invalid(message: "Invalid attach: 'attach' must be a session id (a string of 1 to 256 printable characters)"))
        }
        var after = 0
        if let v = o["after_seq"], !v.isNull {
            guard case .int(let n) = v, n >= 0, n <= Int64(maxSeq) else {
                return .failure(Invalid(message: "Invalid attach: 'after_seq' must be a whole number from 0 to \(maxSeq)"))
            }
            after = Int(n)
        }
        return .success(AttachRequest(sessionID: sid, afterSeq: after))
    }
}
