/// One lab's share of a Docker engine (`LAB_DEPLOYMENT`).
///
/// Everything labctrl creates carries `lab.deployment=<name>` and is named `<name>-<user>`; every
/// list, adoption, removal and event filter includes the label, so labs sharing an engine never touch
/// each other's containers. Replicas of one lab use the same name.
public enum Deployment {
    public static let label = "lab.deployment"
    public static let maxLength = 20
    public static let rule = "1-20 characters of a-z 0-9 - not starting or ending with -"

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...maxLength).contains(bytes.count), bytes.first != dash, bytes.last != dash else { return false }
        return bytes.allSatisfy { isLowerAlnum($0) || $0 == dash }
    }

    /// The default: the controller id when it already is a valid name, else its lower-cased
    /// `[a-z0-9-]` form, shortened with a hash of the whole id when too long (so distinct long ids stay
    /// distinct). Deterministic: a restarted controller finds its containers again.
    public static func derived(fromControllerID id: String) -> String {
        if isValid(id) { return id }
        let cleaned = sanitized(id)
        if cleaned.utf8.count <= maxLength, isValid(cleaned), cleaned == id.lowercased() { return cleaned }
        let suffix = shortHash(id)
        let head = trimmedDashes(String(cleaned.prefix(maxLength - suffix.count - 1)))
        return head.isEmpty ? "lab-\(suffix)" : "\(head)-\(suffix)"
    }

    /// `[a-z0-9-]` form of `s`: lower-cased, every other character a `-`, no leading or trailing `-`.
    static func sanitized(_ s: String) -> String {
        let mapped = s.lowercased().utf8.map { isLowerAlnum($0) ? Character(Unicode.Scalar($0)) : "-" }
        return trimmedDashes(String(mapped))
    }

    static func trimmedDashes(_ s: String) -> String {
        var t = Substring(s)
        while t.first == "-" { t.removeFirst() }
        while t.last == "-" { t.removeLast() }
        return String(t)
    }

    /// 6 hex digits of the FNV-1a hash of `s`: naming, not security.
    static func shortHash(_ s: String) -> String { String(SpecHash.of([s]).suffix(6)) }

    private static let dash = UInt8(ascii: "-")
    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
    }
}
