import Foundation
import RelayProtocol

/// The session's running totals from Claude's `result` messages, and the text of the `/cost` and
/// `/status` replies (the reference's wording and number format).
struct ClaudeTotals: Equatable {
    var cost = 0.0
    var inputTokens: Int64 = 0
    var outputTokens: Int64 = 0
    var turns = 0
    var lastContext: Int64 = 0

    /// Adds a successful turn's cost and usage. Counts saturate: the numbers come from the child,
    /// and an absurd value must not trap.
    mutating func add(result m: JSON) {
        guard m["subtype"]?.stringValue == "success" else { return }
        cost += m["total_cost_usd"]?.doubleValue ?? 0
        let usage = m["usage"] ?? .null
        let input = usage["input_tokens"]?.intValue ?? 0
        inputTokens = Self.sum(inputTokens, input)
        outputTokens = Self.sum(outputTokens, usage["output_tokens"]?.intValue ?? 0)
        turns += 1
        lastContext = Self.sum(
            input, usage["cache_read_input_tokens"]?.intValue ?? 0, usage["cache_creation_input_tokens"]?.intValue ?? 0)
    }

    static func sum(_ values: Int64...) -> Int64 {
        values.reduce(0) { total, value in
            let (result, overflow) = total.addingReportingOverflow(value)
            return overflow ? (value > 0 ? .max : .min) : result
        }
    }

    /// The `/cost` reply.
    var costText: String {
        [
            "**Session cost:** $\(Self.dollars(cost))",
            "**Input tokens:** \(Self.grouped(inputTokens))",
            "**Output tokens:** \(Self.grouped(outputTokens))",
            "**Turns:** \(turns)",
        ].joined(separator: "\n")
    }

    /// The `/status` reply; `model` is the override or the running model, `pending` whether the
    /// override still waits for the next turn.
    func statusText(model: String, pending: Bool, conversation: String?) -> String {
        [
            "**Model:** \(model)\(pending ? " (applies next turn)" : "")",
            "**Session:** \(conversation ?? "new (no turn yet)")",
            "**Turns:** \(turns)",
            "**Context (last turn):** \(Self.grouped(lastContext)) tokens",
            "**Cost so far:** $\(Self.dollars(cost))",
        ].joined(separator: "\n")
    }

    static func dollars(_ value: Double) -> String { String(format: "%.4f", value) }

    /// Python's `f"{n:,}"`: thousands separated by commas, a leading `-` for negatives (pinned by
    /// `ClaudeCostTextTests`).
    static func grouped(_ n: Int64) -> String { n.formatted(groupedStyle) }

    static let groupedStyle = IntegerFormatStyle<Int64>.number.grouping(.automatic).locale(Locale(identifier: "en_US"))
}
