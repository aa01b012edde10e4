/// Turns raw terminal output into plain text: OSC-8 links become their URL,
/// cursor-forward becomes spaces, other escape sequences and control characters are removed,
/// line endings become `\n`.
enum TerminalText {
    /// Spaces one cursor-forward sequence may become (a wide terminal's width).
    static let maxCursorForward = 1000

    static func clean(_ input: String) -> String {
        var out = String.UnicodeScalarView()
        let s = Array(input.unicodeScalars)
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == "\u{1B}", i + 1 < s.count {
                let next = s[i + 1]
                if next == "[" {
                    // CSI: parameters then a final byte.
                    var j = i + 2
                    var params = ""
                    while j < s.count, "0123456789;?><= ".unicodeScalars.contains(s[j]) {
                        params.unicodeScalars.append(s[j])
                        j += 1
                    }
                    if j < s.count, (0x40...0x7E).contains(s[j].value) {
                        if s[j] == "C" {
                            // Cursor forward, capped: a child printing ESC[999999999999C must not allocate that much.
                            let n = min(max(1, Int(params) ?? 1), TerminalText.maxCursorForward)
                            out.append(contentsOf: String(repeating: " ", count: n).unicodeScalars)
                        }
                        i = j + 1
                    } else {
                        i = j
                    }
                    continue
                }
                if next == "]" {
                    // OSC, up to BEL or ST. OSC 8 (hyperlink) keeps its URL.
                    var j = i + 2
                    var body = String.UnicodeScalarView()
                    while j < s.count, s[j] != "\u{07}", s[j] != "\u{1B}" {
                        body.append(s[j])
                        j += 1
                    }
                    if j < s.count, s[j] == "\u{1B}" { j += (j + 1 < s.count && s[j + 1] == "\\") ? 2 : 1 } else if j < s.count { j += 1 }
                    let text = String(body)
                    if text.hasPrefix("8;") {
                        let parts = text.split(separator: ";", maxSplits: 2, omittingEmptySubsequences: false)
                        if parts.count == 3 { out.append(contentsOf: parts[2].unicodeScalars) }
                    }
                    i = j
                    continue
                }
                if next == "P" {
                    var j = i + 2
                    while j + 1 < s.count, !(s[j] == "\u{1B}" && s[j + 1] == "\\") { j += 1 }
                    i = min(s.count, j + 2)
                    continue
                }
                i += 2
                continue
            }
            if c == "\u{1B}" || c == "\u{7F}" || (c.value < 0x20 && c != "\t" && c != "\n" && c != "\r") {
                i += 1
                continue
            }
            out.append(c)
            i += 1
        }
        var text = String(out)
        text = text.replacingOccurrences("\r\r\n", "\n").replacingOccurrences("\r\n", "\n").replacingOccurrences("\r", "\n")
        return text
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
