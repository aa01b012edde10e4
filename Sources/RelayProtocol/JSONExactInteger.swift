#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whether a double is exactly the integer written in decimal `text` (JSON integer syntax: an
/// optional `-`, no leading zeros). Used for integers beyond Int64, which the parser keeps as a
/// double only when no digit is lost.
enum JSONExactInteger {
    /// A finite double has at most 309 integer digits; longer text cannot match.
    static let maxDigits = 330

    static func matches(_ d: Double, _ text: String) -> Bool {
        guard d.isFinite, text.utf8.count <= maxDigits + 1 else { return false }
        // C's "%.0f" prints a double's exact decimal value (glibc, musl); 400 bytes hold any finite one.
        var buffer = [CChar](repeating: 0, count: 400)
        let n = buffer.withUnsafeMutableBufferPointer { p in
            withVaList([d]) { vsnprintf(p.baseAddress, p.count, "%.0f", $0) }
        }
        guard n > 0, n < buffer.count else { return false }
        let printed = buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }
        return printed == Array(text.utf8)
    }
}
