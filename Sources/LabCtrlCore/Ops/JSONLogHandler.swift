import Logging
import RelayProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One JSON object per line on stderr (`LAB_LOG_FORMAT=json`), for log shippers:
/// `{"ts":…,"level":"info","logger":"labctrl","msg":"…", <metadata>}`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var o = JSONObject()
        o["ts"] = .double((RelayClock.now() * 1000).rounded() / 1000)
        o["level"] = .string(event.level.rawValue)
        o["logger"] = .string(label)
        o["msg"] = .string("\(event.message)")
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        for (k, v) in all.sorted(by: { $0.key < $1.key }) where o[k] == nil { o[k] = Self.json(v) }
        var line = JSON.object(o).encoded()
        line.append(UInt8(ascii: "\n"))
        Self.writeLock.withLock { _ in
            line.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    let n = write(2, raw.baseAddress! + off, raw.count - off)
                    if n <= 0 { break }
                    off += n
                }
            }
        }
    }

    private static let writeLock = Mutex<Void>(())

    static func json(_ v: Logger.Metadata.Value) -> JSON {
        switch v {
        case .string(let s): .string(s)
        case .stringConvertible(let c): .string(c.description)
        case .array(let a): .array(a.map(json))
        case .dictionary(let d): .object(d.sorted { $0.key < $1.key }.reduce(into: JSONObject()) { $0[$1.key] = json($1.value) })
        }
    }
}
