import Logging

extension Logger.MetadataValue {
    /// Longest part of a client-supplied string a log line keeps.
    static let clientTextLimit = 200

    /// A client-supplied string for a log line's metadata: quoted, with every control, format and
    /// line-separator character escaped (no forged log lines, no terminal escapes), and capped so one
    /// request cannot flood the log. Client strings never go into the message itself.
    static func client(_ text: some StringProtocol) -> Self {
        var out = "\""
        var kept = 0
        for scalar in text.unicodeScalars {
            guard kept < clientTextLimit else {
                out += "…"
                break
            }
            kept += 1
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                out += scalar.escaped(asASCII: true)
            default:
                if scalar == "\"" || scalar == "\\" { out += "\\" }
                out.unicodeScalars.append(scalar)
            }
        }
        return .string(out + "\"")
    }
}
