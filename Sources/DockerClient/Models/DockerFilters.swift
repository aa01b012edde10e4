import Foundation

/// Engine-side filters, e.g. `["label": ["lab.managed-by=labctrl"], "status": ["running"]]`.
///
/// Sent as the JSON `filters` query parameter of list and events calls. Keys are the engine's filter names
/// (`label`, `name`, `id`, `status`, `type`, `event`, `container`, `image`, `network`, `volume`, …).
public struct DockerFilters: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var values: [String: [String]]

    public init(_ values: [String: [String]] = [:]) { self.values = values }

    public init(dictionaryLiteral elements: (String, [String])...) {
        values = Dictionary(elements, uniquingKeysWith: +)
    }

    /// Containers, images, networks or volumes carrying `key` (or `key=value`).
    public static func label(_ key: String, _ value: String? = nil) -> DockerFilters {
        DockerFilters(["label": [value.map { "\(key)=\($0)" } ?? key]])
    }

    /// Adds one value under `key`.
    public mutating func add(_ key: String, _ value: String) {
        values[key, default: []].append(value)
    }

    /// Returns a copy with one more value under `key`.
    public func adding(_ key: String, _ value: String) -> DockerFilters {
        var copy = self
        copy.add(key, value)
        return copy
    }

    public var isEmpty: Bool { values.allSatisfy { $0.value.isEmpty } }

    var json: String {
        let data = (try? JSONSerialization.data(withJSONObject: values.filter { !$0.value.isEmpty }, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
