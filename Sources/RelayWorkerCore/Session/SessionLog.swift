import RelayProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A session's numbered events (docs/protocol.md §7): `seq` 1 is `session_start`, each later event +1.
///
/// Appending never waits for a client: the newest events stay in a bounded memory tail, every event
/// also goes to the session's JSON-lines file (with a state folder), and each attached client reads
/// from here at its own pace. A client behind what is kept gets a gap, never a slower agent.
final class SessionLog: Sendable {
    /// Caps (documented in docs/protocol.md §7).
    struct Limits: Sendable {
        var tailEvents = 4096
        var tailBytes = 8 << 20
        /// The file stops growing here; later events are only in memory (a restarted worker replays
        /// up to the cap, then a `replay_gap`).
        var fileBytes = 256 << 20
    }

    struct Entry: Sendable {
        let seq: Int
        let bytes: [UInt8]
    }

    enum Read: Sendable {
        case events([Entry])
        /// Nothing kept after the cursor up to `first` (exclusive of the cursor).
        case gap(first: Int)
        case waiting
        case ended
    }

    let sessionID: String
    let limits: Limits
    private let file: LogFile?

    private struct State {
        var last: Int
        var tail: [Entry] = []
        var head = 0  // first live index in `tail` (dropped entries are compacted in batches)
        var tailBytes = 0
        var ended = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }
    private let state: Mutex<State>

    init(sessionID: String, file: LogFile?, last: Int = 0, ended: Bool = false, limits: Limits = Limits()) {
        self.sessionID = sessionID
        self.file = file
        self.limits = limits
        var s = State(last: last)
        s.ended = ended
        self.state = Mutex(s)
    }

    var lastSeq: Int { state.withLock { $0.last } }
    var isEnded: Bool { state.withLock { $0.ended } }

    /// Numbers, stamps and stores one event; wakes every waiting reader. Returns its seq (nil once ended).
    @discardableResult
    func append(_ event: RelayEvent, final: Bool = false) -> Int? {
        var event = event
        event.sessionID = sessionID
        let appended: (seq: Int, wake: [CheckedContinuation<Void, Never>])? = state.withLock { s in
            guard !s.ended else { return nil }
            s.last += 1
            event.seq = s.last
            let bytes = event.encoded()
            s.tail.append(Entry(seq: s.last, bytes: bytes))
            s.tailBytes += bytes.count
            while s.tail.count - s.head > limits.tailEvents || (s.tailBytes > limits.tailBytes && s.tail.count - s.head > 1) {
                s.tailBytes -= s.tail[s.head].bytes.count
                s.head += 1
            }
            if s.head > 1024, s.head * 2 > s.tail.count {
                s.tail.removeFirst(s.head)
                s.head = 0
            }
            // Written under the lock so the file keeps seq order.
            file?.append(seq: s.last, line: bytes, cap: limits.fileBytes)
            if final { s.ended = true }
            let wake = Array(s.waiters.values)
            s.waiters = [:]
            return (s.last, wake)
        }
        guard let appended else { return nil }
        for w in appended.wake { w.resume() }
        return appended.seq
    }

    /// An ended session keeps a small tail only: with a file the replay reads it from there, without
    /// one the last events are enough to say how it ended (docs/protocol.md §7, caps).
    func compact() {
        // A file that hit its cap lacks the newest events: then the tail is all there is of them.
        if file?.isFull == true { return }
        let keepEvents = file == nil ? 64 : 1
        let keepBytes = file == nil ? 64 << 10 : 0
        state.withLock { s in
            while s.tail.count - s.head > keepEvents || (s.tailBytes > keepBytes && s.tail.count - s.head > 1) {
                s.tailBytes -= s.tail[s.head].bytes.count
                s.head += 1
            }
            s.tail.removeFirst(s.head)
            s.head = 0
        }
    }

    /// Marks the log ended without an event (a recovered session already has its `session_end`).
    func end() {
        let wake = state.withLock { s in
            s.ended = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in wake { w.resume() }
    }

    /// Up to `limit` events after `cursor`, from memory, else from the file.
    func read(after cursor: Int, limit: Int = 256) -> Read {
        let fromMemory: Read? = state.withLock { s in
            if cursor >= s.last { return s.ended ? .ended : .waiting }
            let firstInTail = s.head < s.tail.count ? s.tail[s.head].seq : s.last + 1
            if cursor + 1 >= firstInTail {
                let start = s.head + (cursor + 1 - firstInTail)
                let end = min(s.tail.count, start + limit)
                return .events(Array(s.tail[start..<end]))
            }
            return nil
        }
        if let fromMemory { return fromMemory }
        let firstInTail: Int = state.withLock { s in s.head < s.tail.count ? s.tail[s.head].seq : s.last + 1 }
        guard let file else { return .gap(first: firstInTail) }
        switch file.read(after: cursor, before: firstInTail, limit: limit, sessionID: sessionID) {
        case .events(let entries) where !entries.isEmpty: return .events(entries)
        case .gap(let first): return .gap(first: min(first, firstInTail))
        default: return .gap(first: firstInTail)
        }
    }

    /// Returns once there is an event after `cursor`, the log has ended, or the task is cancelled.
    func wait(after cursor: Int) async {
        let id: UInt64 = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLock { s in
                    if s.last > cursor || s.ended || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id) }
            c?.resume()
        }
    }
}

/// A session's events on disk: one JSON object per line, appended with `O_APPEND`.
///
/// The folder is writable by the agent (it runs as the worker's user), so reading treats the file as
/// hostile: no symlinks, lines capped, every line parsed, `seq` must climb by one and `session_id`
/// must match; anything else becomes a gap, never a crash or a wrong `seq`.
final class LogFile: Sendable {
    let path: String
    /// Longest line read back (an event is at most the client message cap plus its envelope).
    static let maxLine = 64 << 20

    private struct Writer {
        var fd: Int32
        var offset: Int
        var full = false
    }
    private let writer: Mutex<Writer?>
    private let full = Atomic<Bool>(false)
    /// The cap was hit (or a write failed): later events are not in the file.
    var isFull: Bool { full.load(ordering: .relaxed) }
    /// Every 64th seq's byte offset (from appends and from reads), so a replay starts near its cursor.
    private let index = Mutex<[(seq: Int, offset: Int)]>([])

    /// Opens (creating) the file for appending; nil writer if it cannot be opened (events stay in memory).
    init(path: String, appending: Bool) {
        self.path = path
        guard appending else {
            writer = Mutex(nil)
            return
        }
        // O_NONBLOCK: opening a FIFO planted by the agent must fail, not wait for a reader.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
        var st = stat()
        if fd >= 0, fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
            writer = Mutex(Writer(fd: fd, offset: Int(st.st_size)))
        } else {
            if fd >= 0 { close(fd) }
            writer = Mutex(nil)
        }
    }

    deinit {
        writer.withLock { w in
            if let fd = w?.fd { close(fd) }
        }
    }

    func closeWriter() {
        writer.withLock { w in
            if let fd = w?.fd { close(fd) }
            w = nil
        }
    }

    func append(seq: Int, line: [UInt8], cap: Int) {
        writer.withLock { w in
            guard var cur = w, !cur.full else { return }
            guard cur.offset + line.count + 1 <= cap else {
                cur.full = true
                full.store(true, ordering: .relaxed)
                w = cur
                return
            }
            if seq % 64 == 1 { note(seq: seq, offset: cur.offset) }
            var data = line
            data.append(0x0A)
            let ok = data.withUnsafeBytes { raw -> Bool in
                var done = 0
                while done < raw.count {
                    let n = write(cur.fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else { return false }
                    done += n
                }
                return true
            }
            if ok {
                cur.offset += data.count
            } else {
                cur.full = true
                full.store(true, ordering: .relaxed)
            }
            w = cur
        }
    }

    enum Read {
        case events([SessionLog.Entry])
        case gap(first: Int)
    }

    /// Events with `cursor < seq < before`, up to `limit`. A missing or damaged stretch is a gap to the
    /// next good line.
    func read(after cursor: Int, before: Int, limit: Int, sessionID: String) -> Read {
        let start: Int = index.withLock { i in i.last(where: { $0.seq <= cursor + 1 })?.offset ?? 0 }
        var out: [SessionLog.Entry] = []
        var expected = cursor + 1
        var gapTo: Int?
        LogFile.scan(path: path, from: start) { line, offset in
            guard let entry = LogFile.entry(line, sessionID: sessionID) else { return true }  // damaged: skip
            if entry.seq % 64 == 1 { note(seq: entry.seq, offset: offset) }
            if entry.seq < expected { return true }
            if entry.seq >= before { return false }
            if entry.seq > expected {
                if out.isEmpty { gapTo = entry.seq }
                return false
            }
            out.append(entry)
            expected += 1
            return out.count < limit
        }
        if out.isEmpty { return .gap(first: gapTo ?? before) }
        return .events(out)
    }

    /// Records where `seq` starts; kept in seq order (a hostile file cannot make a replay go backwards).
    private func note(seq: Int, offset: Int) {
        index.withLock { i in
            if i.last.map({ seq > $0.seq && offset > $0.offset }) ?? true, i.count < 1 << 20 { i.append((seq, offset)) }
        }
    }

    /// One line as an event of this session, or nil (not JSON, no integer `seq`, another session).
    static func entry(_ line: [UInt8], sessionID: String) -> SessionLog.Entry? {
        guard let value = try? JSON.parse(line), case .object(let o) = value, o["type"]?.stringValue != nil,
            o["session_id"]?.stringValue == sessionID, let seq = o["seq"]?.intValue, seq > 0, seq < Int64(Int32.max)
        else { return nil }
        return SessionLog.Entry(seq: Int(seq), bytes: line)
    }

    /// Calls `body` with each line from `offset` (without its newline) until it returns false. A line over
    /// ``maxLine`` is skipped. The file is opened without following symlinks and must be a regular file.
    static func scan(path: String, from offset: Int, _ body: ([UInt8]) -> Bool) {
        scan(path: path, from: offset) { line, _ in body(line) }
    }

    /// The same, with each line's byte offset.
    static func scan(path: String, from offset: Int, _ body: ([UInt8], Int) -> Bool) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return }
        guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var line: [UInt8] = []
        var skipping = false
        var bufferStart = offset  // file offset of buffer[0]
        var lineStart = offset
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            var i = 0
            while i < n {
                guard let nl = buffer[i..<n].firstIndex(of: 0x0A) else {
                    if !skipping { line.append(contentsOf: buffer[i..<n]) }
                    if line.count > maxLine {
                        line = []
                        skipping = true
                    }
                    break
                }
                if !skipping { line.append(contentsOf: buffer[i..<nl]) }
                if !skipping, line.count <= maxLine, !body(line, lineStart) { return }
                line = []
                skipping = false
                i = nl + 1
                lineStart = bufferStart + i
            }
            bufferStart += n
        }
    }
}
