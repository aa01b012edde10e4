/// A verified user id, safe to use as a folder name and inside a container name.
///
/// Ids come from credentials (JWT `sub`, token file), never from the client's handshake, and are checked
/// before they become paths: 1–64 characters of `a-z A-Z 0-9 _ . -`, starting with a letter or digit,
/// so `.`/`..`, slashes and option-looking names are impossible.
public struct UserID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let value: String

    /// The rule, for error messages.
    public static let rule = "1-64 characters of a-z A-Z 0-9 _ . - starting with a letter or digit"

    public init?(_ value: String) {
        let bytes = Array(value.utf8)
        guard (1...64).contains(bytes.count), Self.isAlnum(bytes[0]) else { return nil }
        guard bytes.allSatisfy({ Self.isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { return nil }
        self.value = value
    }

    public var description: String { value }

    public static func < (a: UserID, b: UserID) -> Bool { a.value < b.value }

    /// Docker container name for this user in a deployment (``Deployment``). Names allow
    /// `[a-zA-Z0-9][a-zA-Z0-9_.-]`, so the id fits as is.
    public func containerName(deployment: String) -> String { "\(deployment)-\(value)" }

    /// Container host name: always a valid DNS label (at most 63 of `a-z 0-9 -`, no `-` at either end).
    /// Ids that are one already are used as they are; others are lower-cased with `_`/`.` as `-` and,
    /// being lossy or too long, cut and given a hash of the full id, so two users never share one.
    public var hostName: String {
        let cleaned = Deployment.sanitized(value)
        if cleaned == value, cleaned.utf8.count <= 63 { return cleaned }
        let suffix = Deployment.shortHash(value)
        let head = Deployment.trimmedDashes(String(cleaned.prefix(63 - suffix.count - 1)))
        return head.isEmpty ? "u-\(suffix)" : "\(head)-\(suffix)"
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }
}
