import Foundation

/// `[ARTIFACT type="…" title="…" lang="…"]…[/ARTIFACT]` blocks in a Claude final result.
enum Artifacts {
    struct Artifact: Equatable {
        var type: String
        var title: String
        var lang: String
        var content: String
    }

    static let types: Set<String> = ["html", "code", "markdown", "data", "url", "text", "image"]

    /// Returns the cleaned text and the artifacts, in order.
    static func extract(_ text: String) -> (text: String, artifacts: [Artifact]) {
        var artifacts: [Artifact] = []
        var output = ""
        var rest = Substring(text)
        while let open = rest.range(of: "[artifact", options: .caseInsensitive) {
            guard let headerEnd = rest[open.upperBound...].firstIndex(of: "]"),
                let close = rest[rest.index(after: headerEnd)...].range(of: "[/artifact]", options: .caseInsensitive)
            else { break }
            output += rest[..<open.lowerBound]
            let attrs = parseAttributes(String(rest[open.upperBound..<headerEnd]))
            let body = String(rest[rest.index(after: headerEnd)..<close.lowerBound])
            var type = (attrs["type"] ?? "text").lowercased()
            if !types.contains(type) { type = "text" }
            artifacts.append(
                Artifact(type: type, title: attrs["title"] ?? "Artifact", lang: attrs["lang"] ?? "", content: body.trimmed))
            rest = rest[close.upperBound...]
        }
        output += rest
        output = output.replacingOccurrences(of: "\n{3,}", with: "\n\n", options: .regularExpression)
        return (output.trimmed, artifacts)
    }

    static func parseAttributes(_ s: String) -> [String: String] {
        var attrs: [String: String] = [:]
        var rest = Substring(s)
        while let eq = rest.range(of: "=\"") {
            let key = rest[..<eq.lowerBound].split(whereSeparator: { $0 == " " || $0 == "\t" }).last.map(String.init) ?? ""
            let afterQuote = rest[eq.upperBound...]
            guard let endQuote = afterQuote.firstIndex(of: "\"") else { break }
            if !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                attrs[key.lowercased()] = String(afterQuote[..<endQuote])
            }
            rest = afterQuote[afterQuote.index(after: endQuote)...]
        }
        return attrs
    }
}

