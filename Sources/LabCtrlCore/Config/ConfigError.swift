/// A setting that cannot be used. `labctrl` prints `description` on one line and exits with status 2.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The environment variable at fault.
    public let variable: String
    /// The offending value (secrets are never echoed).
    public let value: String?
    /// What was expected instead.
    public let expected: String

    public init(variable: String, value: String?, expected: String) {
        self.variable = variable
        self.value = value
        self.expected = expected
    }

    public var description: String {
        if let value { return "\(variable)=\(value.debugDescription): expected \(expected)" }
        return "\(variable): \(expected)"
    }
}
