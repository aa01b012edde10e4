import Foundation

/// Builds a URL query string with strict percent-encoding (filter values are JSON, image names carry `/`).
struct Query: Sendable {
    private(set) var items: [(String, String)] = []

    init() {}

    mutating func add(_ name: String, _ value: String?) {
        if let value { items.append((name, value)) }
    }

    mutating func add(_ name: String, _ value: Bool?) {
        if let value { items.append((name, value ? "1" : "0")) }
    }

    mutating func add(_ name: String, _ value: Int?) {
        if let value { items.append((name, String(value))) }
    }

    /// `filters={"label":["a=b"]}` as the engine expects; nothing when empty.
    mutating func add(filters: DockerFilters) {
        guard !filters.isEmpty else { return }
        add("filters", filters.json)
    }

    var string: String {
        items.isEmpty ? "" : "?" + items.map { "\(Self.escape($0.0))=\(Self.escape($0.1))" }.joined(separator: "&")
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    private static let pathAllowed = unreserved.union(CharacterSet(charactersIn: ":@"))
    private static let imagePathAllowed = pathAllowed.union(CharacterSet(charactersIn: "/"))

    static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }

    /// One path segment: a container id or name, a network, a volume.
    static func segment(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? value
    }

    /// An image reference inside a path; the engine's routes accept `/` in image names.
    static func imageSegment(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: imagePathAllowed) ?? value
    }
}
