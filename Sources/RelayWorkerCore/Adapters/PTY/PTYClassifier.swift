import Foundation
import RelayProtocol

/// The reference's heuristics for labelling terminal output, applied per chunk.
enum PTYClassifier {
    private static func regex(_ pattern: String, _ options: NSRegularExpression.Options = [.caseInsensitive]) -> NSRegularExpression {
        try! NSRegularExpression(pattern: pattern, options: options)
    }

    static let quota = regex(#"quota|rate.?limit|billing|429|too many requests"#)
    static let pctThenContext = regex(#"(\d+)\s*%.*context"#)
    static let contextThenPct = regex(#"context.*?(\d+)\s*%"#)
    static let contextLimit = regex(#"context.{0,20}(limit|full|compact|window)"#)
    static let compacted = regex(#"compact|compacted|compacting|summariz"#)
    static let toolCall = regex(
        #"^[>│]\s*(Read|Edit|Write|Bash|Glob|Grep|WebFetch|WebSearch)\s*[(\[]?(.*)$"#, [.dotMatchesLineSeparators])
    static let diff = regex(#"^[+-]{3}\s|(created|updated|modified|wrote)\s+.*\.(py|ts|tsx|js|go|rs|java)"#)
    static let reasoning = regex(#"^[│┃]|thinking|planning|analyzing|let me|i will|i'll"#)

    static func classify(_ text: String) -> RelayEvent {
        let range = NSRange(text.startIndex..., in: text)
        func match(_ r: NSRegularExpression) -> NSTextCheckingResult? { r.firstMatch(in: text, range: range) }
        func group(_ m: NSTextCheckingResult, _ i: Int) -> String? {
            Range(m.range(at: i), in: text).map { String(text[$0]) }
        }
        if match(quota) != nil { return RelayEvent("quota_warning", text: text) }
        if let m = match(pctThenContext) ?? match(contextThenPct) {
            var e = RelayEvent("context_warning", text: text)
            e.contextPct = group(m, 1).flatMap { Int($0) }
            return e
        }
        if match(contextLimit) != nil { return RelayEvent("context_warning", text: text) }
        if match(compacted) != nil { return RelayEvent("context_compacted", text: text) }
        if let m = match(toolCall), m.range.length == range.length {
            return RelayEvent("tool_call", text: (group(m, 2) ?? "").trimmed, tool: group(m, 1))
        }
        if match(diff) != nil { return RelayEvent("file_diff", text: text) }
        if match(reasoning) != nil { return RelayEvent("reasoning", text: text) }
        return RelayEvent("stdout", text: text)
    }
}
