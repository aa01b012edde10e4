/// A short, stable fingerprint of a worker's settings (image, command, environment, limits...).
///
/// Stored as a container label; when the current settings hash differently, the worker is recreated once
/// it is idle. FNV-1a over a canonical line list: change detection, not security.
public enum SpecHash {
    public static func of(_ lines: [String]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for line in lines {
            for b in line.utf8 {
                h ^= UInt64(b)
                h = h &* 0x0000_0100_0000_01B3
            }
            h ^= 0x0A
            h = h &* 0x0000_0100_0000_01B3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
