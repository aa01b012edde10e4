import RelayProtocol

/// Presence tests for optional JSON values.
///
/// Why: `JSON` is `ExpressibleByNilLiteral`, so `value.flatMap { $0.isNull ? nil : $0 }` quietly
/// returns `.some(.null)` instead of `nil` (the `nil` becomes `JSON.null`). These never do.
extension Optional where Wrapped == JSON {
    /// The value unless it is missing or JSON `null`.
    var nonNull: JSON? {
        if case .some(let v) = self, !v.isNull { return v }
        return nil
    }

    /// The value when it is truthy the way Python's `or` sees it.
    var truthy: JSON? {
        if case .some(let v) = self, v.isTruthy { return v }
        return nil
    }

    /// The value when it is a JSON object.
    var object: JSON? {
        if case .some(let v) = self, v.objectValue != nil { return v }
        return nil
    }
}
