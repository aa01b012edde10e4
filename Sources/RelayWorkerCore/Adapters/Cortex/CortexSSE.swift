/// Server-sent events, line by line. Unlike the reference, `data:` values
/// lose only the one optional space after the colon (the SSE rule), not all surrounding whitespace.
struct CortexSSEParser {
    private var name = "message"
    private var data: [String] = []

    /// Feeds one line (without its line ending); returns a finished event (name, data) at a blank line.
    mutating func push(_ line: String) -> (name: String, data: String)? {
        if line.isEmpty {
            defer {
                name = "message"
                data = []
            }
            return flush()
        }
        if line.hasPrefix(":") { return nil }
        if line.hasPrefix("event:") {
            name = String(line.dropFirst(6)).trimmed
        } else if line.hasPrefix("data:") {
            var value = Substring(line.dropFirst(5))
            if value.first == " " { value = value.dropFirst() }
            data.append(String(value))
        }
        return nil
    }

    /// The last event when the stream ends without a blank line.
    mutating func finish() -> (name: String, data: String)? {
        defer { data = [] }
        return flush()
    }

    private func flush() -> (name: String, data: String)? {
        data.isEmpty ? nil : (name, data.joined(separator: "\n"))
    }
}
