/// The per-worker secret that keeps everyone but its controller off a worker (docs/protocol.md, "Worker
/// access"). The worker gets it in its environment (`RELAY_WORKER_TOKEN`), takes it out of its
/// environment at start and makes itself non-dumpable, so agents cannot read it back.
public enum WorkerToken {
    public static let environmentVariable = "RELAY_WORKER_TOKEN"

    /// 256 random bits, hex. `SystemRandomNumberGenerator` reads the kernel's CSPRNG (getrandom).
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for _ in 0..<4 {
            var word = rng.next() as UInt64
            for _ in 0..<16 {
                out.append(digits[Int(word & 0xF)])
                word >>= 4
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The token in a container's `Env` list (adoption after a controller restart).
    public static func find(in env: [String]?) -> String? {
        let prefix = environmentVariable + "="
        guard let entry = env?.first(where: { $0.hasPrefix(prefix) }) else { return nil }
        let token = String(entry.dropFirst(prefix.count))
        return token.isEmpty ? nil : token
    }
}
