import Logging
import RelayProtocol
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The worker's sessions by `session_id` (live and ended), and the service their agents run under.
///
/// Sessions outlive the sockets that started them, so their agents are children of this service's
/// task group, not of a connection. With a state folder each session keeps `meta.json` and
/// `events.jsonl` in a folder of its own; on start-up past sessions are read back as `ended`
/// (docs/protocol.md §7).
public final class SessionDirectory: Service, Sendable {
    let options: WorkerOptions
    let logger: Logger
    /// Ended sessions kept in memory for attach and listing (the oldest are forgotten first; their
    /// files stay).
    static let maxEnded = 512
    /// Past sessions read back from the state folder at start-up (newest first).
    static let maxRecovered = 512

    private struct State {
        var sessions: [String: LiveSession] = [:]
        var ended: [String] = []  // ended ids, oldest first
        var accepting = true
    }
    private let state = Mutex(State())
    private let starts: AsyncStream<LiveSession>
    private let startInput: AsyncStream<LiveSession>.Continuation

    public init(options: WorkerOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        (starts, startInput) = AsyncStream.makeStream()
        recover()
    }

    // ---- the service -----------------------------------------------------------------------------

    public func run() async throws {
        let grace: Duration? = options.detachGrace
        let maxTurn = options.maxTurn
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await session in starts {
                    group.addTask {
                        await session.drive(grace: grace, maxTurn: maxTurn)
                        self.ended(session)
                    }
                }
                // Shutting down: every agent is stopped (each records its session_end).
                for s in self.live() { s.requestEnd() }
            }
        } onGracefulShutdown: {
            self.state.withLock { $0.accepting = false }
            self.startInput.finish()
        }
    }

    // ---- lookup ---------------------------------------------------------------------------------

    func session(_ id: String) -> LiveSession? { state.withLock { $0.sessions[id] } }

    /// The live session driving this Claude conversation, if any.
    /// Without a grace a session with no client is already ending: the handshake then resumes the
    /// conversation in a new agent, as in ai-relay.
    func live(claudeSessionID: String) -> LiveSession? {
        let ending = options.detachGrace == .zero
        return state.withLock { s in
            s.sessions.values.first {
                !$0.log.isEnded && !(ending && $0.clients == 0) && $0.sink.tracked.withLock { $0.claudeSessionID } == claudeSessionID
            }
        }
    }

    func live() -> [LiveSession] { state.withLock { s in s.sessions.values.filter { !$0.log.isEnded } } }

    /// `GET /sessions`: newest first.
    public func listing() -> JSON {
        let all = state.withLock { Array($0.sessions.values) }.sorted { $0.createdAt > $1.createdAt }
        var o = JSONObject()
        o["sessions"] = .array(all.map(\.listing))
        return .object(o)
    }

    public var liveCount: Int { live().count }

    // ---- creating ------------------------------------------------------------------------------

    enum StartRefusal: Error {
        case idInUse
        case shuttingDown
    }

    /// Makes the sink a new session's runtime writes to (with its file, if there is a state folder).
    func makeSink(sessionID: String, claudeSessionID: String?, tool: String, folder: String, model: String?) -> EventSink {
        var file: LogFile?
        if let root = options.stateDir {
            let d = root + "/" + Self.folderName()
            if mkdir(d, 0o700) == 0 {
                var meta = JSONObject()
                meta["session_id"] = .string(sessionID)
                meta["tool"] = .string(tool)
                meta["folder"] = .string(folder)
                meta["model"] = model.map(JSON.string) ?? .null
                meta["created_at"] = .double(RelayEvent.now())
                Self.writeFile(d + "/meta.json", JSON.object(meta).encoded())
                file = LogFile(path: d + "/events.jsonl", appending: true)
            } else {
                logger.warning("session folder not created; events stay in memory", metadata: ["folder": "\(d)", "errno": "\(errno)"])
            }
        }
        return EventSink(log: SessionLog(sessionID: sessionID, file: file), claudeSessionID: claudeSessionID, logger: logger)
    }

    /// Registers a new session and starts its agent.
    func start(_ session: LiveSession) throws(StartRefusal) {
        try state.withLock { s throws(StartRefusal) in
            guard s.accepting else { throw .shuttingDown }
            if let old = s.sessions[session.id], !old.log.isEnded { throw .idInUse }
            s.ended.removeAll { $0 == session.id }
            s.sessions[session.id] = session
        }
        startInput.yield(session)
    }

    private func ended(_ session: LiveSession) {
        session.log.compact()
        state.withLock { s in
            s.ended.append(session.id)
            while s.ended.count > Self.maxEnded {
                let old = s.ended.removeFirst()
                if s.sessions[old]?.log.isEnded == true { s.sessions[old] = nil }
            }
        }
    }

    // ---- the state folder ----------------------------------------------------------------------

    static func folderName() -> String {
        let ms = Int64(RelayEvent.now() * 1000)
        return "s-\(ms)-\(UInt32.random(in: 0...UInt32.max))"
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
    }

    /// Reads past sessions back as ended. Every file is untrusted (the agent can write there): a folder
    /// whose meta is unreadable is skipped; a log that does not end with `session_end` gets one.
    private func recover() {
        guard let root = options.stateDir, let dir = opendir(root) else { return }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix("s-") { names.append(name) }
        }
        closedir(dir)
        names.sort(by: >)
        var recovered = 0
        for name in names.prefix(Self.maxRecovered) {
            let d = root + "/" + name
            guard let meta = Self.readSmallFile(d + "/meta.json"), let value = try? JSON.parse(meta), case .object(let m) = value,
                let id = m["session_id"]?.stringValue, id.utf8.count <= 256, state.withLock({ $0.sessions[id] == nil })
            else { continue }
            let path = d + "/events.jsonl"
            // The last good seq, counted the way a replay reads (contiguous from 1).
            var last = 0
            var lastType = ""
            var lastTS = m["created_at"]?.doubleValue ?? 0
            LogFile.scan(path: path, from: 0) { line in
                guard let e = LogFile.entry(line, sessionID: id), e.seq == last + 1 else { return e_skip(line, id, last) }
                last = e.seq
                if let o = try? JSON.parse(line) {
                    lastType = o["type"]?.stringValue ?? ""
                    lastTS = o["ts"]?.doubleValue ?? lastTS
                }
                return true
            }
            let file = LogFile(path: path, appending: lastType != "session_end")
            let log = SessionLog(sessionID: id, file: file, last: last)
            let sink = EventSink(log: log, claudeSessionID: nil, logger: logger)
            sink.tracked.withLock { $0.lastEventAt = lastTS }
            if lastType != "session_end" {
                var end = RelayEvent("session_end")
                end.metadata = ["reason": "worker_restarted"]
                sink.record(end)
            } else {
                log.end()
            }
            file.closeWriter()
            log.compact()
            let session = LiveSession(
                id: id, tool: m["tool"]?.stringValue ?? "", folder: m["folder"]?.stringValue ?? "", model: m["model"]?.stringValue,
                createdAt: m["created_at"]?.doubleValue ?? 0, sink: sink, runtime: nil, logger: logger)
            state.withLock { s in
                s.sessions[id] = session
                s.ended.append(id)
            }
            recovered += 1
        }
        if recovered > 0 { logger.info("past sessions recovered", metadata: ["count": "\(recovered)", "state_dir": "\(root)"]) }
    }

    static func readSmallFile(_ path: String, cap: Int = 64 * 1024) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= cap else { return nil }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard n == out.count else { return nil }
        return out
    }
}

/// Recovery stops counting at the first line out of order (a replay gives a gap there).
private func e_skip(_ line: [UInt8], _ id: String, _ last: Int) -> Bool {
    guard let e = LogFile.entry(line, sessionID: id) else { return true }  // damaged: look further
    return e.seq <= last  // a duplicate is skipped; a jump ends the contiguous part
}
