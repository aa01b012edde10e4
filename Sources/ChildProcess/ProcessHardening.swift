import CSpawn

/// Process-level hardening shared by the worker and the controller (both run next to agents that execute
/// arbitrary code as the same OS user).
public enum ProcessHardening {
    /// Makes this process non-dumpable, so same-user processes cannot read its `/proc/<pid>/environ`,
    /// memory or descriptors, nor ptrace it. Returns the errno on failure.
    @discardableResult
    public static func makeNonDumpable() -> Int32 { lab_set_nondumpable() }

    public static var isDumpable: Bool { lab_is_dumpable() != 0 }

    /// Takes a secret out of the environment: returns its value and scrubs it from the process (in place,
    /// so `/proc/<pid>/environ` no longer shows it, and from `environ`, so children do not inherit it).
    /// Values over 4 KiB are refused (nil) but still scrubbed.
    public static func takeEnvironmentSecret(_ name: String) -> String? {
        let cap = 4097
        var buffer = [CChar](repeating: 0, count: cap)
        let n = buffer.withUnsafeMutableBufferPointer { lab_take_env(name, $0.baseAddress, cap) }
        guard n >= 0 else { return nil }
        let bytes = buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }
        for i in buffer.indices { buffer[i] = 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}
