/// A JSON value that keeps object key order (the reference relay emits keys in insertion order and
/// clients display `raw` as received).
///
/// `fragment` holds already-encoded JSON text that is written verbatim: the worker forwards a CLI's
/// line as `raw` without decoding and re-encoding it.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
    case fragment([UInt8])

    public subscript(key: String) -> JSON? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int64(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// A request id as a lookup key: strings as they are, whole numbers in decimal (so JSON-RPC id 0
    /// and "0" meet); nil for anything else.
    public var idKey: String? {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return String(Int64(d))
        default: return nil
        }
    }

    /// Python truthiness, which the reference uses for "present" checks.
    public var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .fragment(let f): return !f.isEmpty
        }
    }

    /// Text for places where the reference used Python `str()`. Strings stay as they are; other values
    /// become compact JSON (documented difference: not Python-repr).
    public var textValue: String {
        switch self {
        case .string(let s): return s
        default: return encodedString()
        }
    }
}

/// An ordered JSON object: keys in insertion order, a duplicate key replaces the earlier value in
/// place (last wins, as Python's `json`).
///
/// Small objects (protocol messages have a handful of keys) are searched linearly; past
/// `indexThreshold` keys a `[String: Int]` index makes insert and lookup O(1), so a hostile
/// 100 000-key object parses in linear time.
public struct JSONObject: Sendable, Sequence {
    public private(set) var keys: [String] = []
    public private(set) var values: [JSON] = []
    /// key → position; nil while the object is small.
    private var index: [String: Int]?

    static let indexThreshold = 8

    public init() {}

    public init(_ pairs: KeyValuePairs<String, JSON?>) {
        for (k, v) in pairs { if let v { self[k] = v } }
    }

    public var isEmpty: Bool { keys.isEmpty }
    public var count: Int { keys.count }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return keys.firstIndex(of: key)
    }

    public subscript(key: String) -> JSON? {
        get { position(of: key).map { values[$0] } }
        set {
            if let i = position(of: key) {
                if let newValue {
                    values[i] = newValue
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    rebuildIndex()
                }
            } else if let newValue {
                keys.append(key)
                values.append(newValue)
                if index != nil {
                    index?[key] = keys.count - 1
                } else if keys.count > Self.indexThreshold {
                    rebuildIndex()
                }
            }
        }
    }

    private mutating func rebuildIndex() {
        guard keys.count > Self.indexThreshold else {
            index = nil
            return
        }
        var map = [String: Int](minimumCapacity: keys.count)
        for (i, k) in keys.enumerated() { map[k] = i }
        index = map
    }

    /// True when the key exists, even with a null value.
    public func has(_ key: String) -> Bool { position(of: key) != nil }

    public func makeIterator() -> Zip2Sequence<[String], [JSON]>.Iterator { zip(keys, values).makeIterator() }
}

extension JSONObject: Equatable {
    /// Same keys in the same order with equal values (the index is a cache, not part of the value).
    public static func == (a: JSONObject, b: JSONObject) -> Bool { a.keys == b.keys && a.values == b.values }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        var o = JSONObject()
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
}

extension JSON {
    public init(_ string: String?) { self = string.map(JSON.string) ?? .null }
}
