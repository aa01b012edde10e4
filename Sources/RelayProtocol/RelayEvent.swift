#if canImport(Glibc)
import Glibc
#endif

/// One relay → client event: the ai-relay 0.4.46 envelope.
///
/// Fields are serialised in the reference's order; top-level `nil`s are omitted, nested nulls kept.
public struct RelayEvent: Sendable, Equatable {
    public var type: String
    public var ts: Double
    public var sessionID: String
    /// The event's place in its session (1 = `session_start`); nil for events outside a session.
    public var seq: Int?
    public var text: JSON?
    public var tool: String?
    public var args: JSON?
    public var filePath: String?
    public var diff: String?
    public var contextPct: Int?
    public var exitCode: Int?
    public var metadata: JSON?
    public var requestID: JSON?
    public var toolUseID: String?
    public var content: JSON?
    public var raw: JSON?
    public var status: String?
    public var title: String?
    public var artifactType: String?

    public init(
        _ type: String, sessionID: String = "", text: String? = nil, tool: String? = nil, args: JSON? = nil,
        metadata: JSON? = nil, requestID: JSON? = nil, toolUseID: String? = nil, content: JSON? = nil,
        raw: JSON? = nil, status: String? = nil
    ) {
        self.type = type
        self.ts = RelayEvent.now()
        self.sessionID = sessionID
        self.text = text.map(JSON.string)
        self.tool = tool
        self.args = args
        self.metadata = metadata
        self.requestID = requestID
        self.toolUseID = toolUseID
        self.content = content
        self.raw = raw
        self.status = status
    }

    /// Seconds since the epoch, with fraction, like Python's `time.time()`.
    public static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// The reference's send filter: an event whose `text` is exactly "" with neither `raw` nor `content`
    /// carries nothing and is not sent.
    public var isEmpty: Bool {
        text == .string("") && raw == nil && content == nil
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        out.append(contentsOf: #"{"type":"#.utf8)
        JSON.encodeString(type, into: &out)
        out.append(contentsOf: #","ts":"#.utf8)
        JSON.encodeDouble(ts, into: &out)
        out.append(contentsOf: #","session_id":"#.utf8)
        JSON.encodeString(sessionID, into: &out)
        if let seq {
            out.append(contentsOf: #","seq":"#.utf8)
            out.append(contentsOf: String(seq).utf8)
        }
        func put(_ key: String, _ value: JSON?) {
            guard let value else { return }
            out.append(UInt8(ascii: ","))
            JSON.encodeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            value.encode(into: &out)
        }
        put("text", text)
        put("tool", tool.map(JSON.string))
        put("args", args)
        put("file_path", filePath.map(JSON.string))
        put("diff", diff.map(JSON.string))
        put("context_pct", contextPct.map { .int(Int64($0)) })
        put("exit_code", exitCode.map { .int(Int64($0)) })
        put("metadata", metadata)
        put("request_id", requestID)
        put("tool_use_id", toolUseID.map(JSON.string))
        put("content", content)
        put("raw", raw)
        put("status", status.map(JSON.string))
        put("title", title.map(JSON.string))
        put("artifact_type", artifactType.map(JSON.string))
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Decodes an envelope (used by the controller, which watches events go by, and by tests).
    public static func decode(_ value: JSON) -> RelayEvent? {
        guard let o = value.objectValue, let type = o["type"]?.stringValue else { return nil }
        var e = RelayEvent(type)
        e.ts = o["ts"]?.doubleValue ?? 0
        e.sessionID = o["session_id"]?.stringValue ?? ""
        e.seq = o["seq"]?.intValue.map { Int($0) }
        e.text = o["text"]
        e.tool = o["tool"]?.stringValue
        e.args = o["args"]
        e.filePath = o["file_path"]?.stringValue
        e.diff = o["diff"]?.stringValue
        e.contextPct = o["context_pct"]?.intValue.map { Int($0) }
        e.exitCode = o["exit_code"]?.intValue.map { Int($0) }
        e.metadata = o["metadata"]
        e.requestID = o["request_id"]
        e.toolUseID = o["tool_use_id"]?.stringValue
        e.content = o["content"]
        e.raw = o["raw"]
        e.status = o["status"]?.stringValue
        e.title = o["title"]?.stringValue
        e.artifactType = o["artifact_type"]?.stringValue
        return e
    }
}
