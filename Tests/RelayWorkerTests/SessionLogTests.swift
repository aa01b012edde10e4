import Foundation
import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// The session log (docs/protocol.md §7): numbering, the memory tail, the file, and a hostile file.
@Suite struct SessionLogTests {
    static func tempDir() -> String {
        let d = NSTemporaryDirectory() + "sessionlog-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static func seqs(_ read: SessionLog.Read) -> [Int] {
        guard case .events(let e) = read else { return [] }
        return e.map(\.seq)
    }

    @Test func eventsAreNumberedFromOneAndStampedWithTheSession() throws {
        let log = SessionLog(sessionID: "s1", file: nil)
        #expect(log.append(RelayEvent("session_start")) == 1)
        #expect(log.append(RelayEvent("input_ack")) == 2)
        guard case .events(let e) = log.read(after: 0) else { Issue.record("no events"); return }
        let first = try JSON.parse(e[0].bytes)
        #expect(first["seq"]?.intValue == 1 && first["session_id"]?.stringValue == "s1")
        #expect(Self.seqs(log.read(after: 1)) == [2])
        guard case .waiting = log.read(after: 2) else { Issue.record("expected waiting"); return }
        log.append(RelayEvent("session_end"), final: true)
        #expect(log.append(RelayEvent("late")) == nil)  // nothing after the end
        #expect(Self.seqs(log.read(after: 2)) == [3])
        guard case .ended = log.read(after: 3) else { Issue.record("expected ended"); return }
    }

    @Test func aReaderBehindTheTailWithoutAFileGetsAGap() {
        var limits = SessionLog.Limits()
        limits.tailEvents = 10
        let log = SessionLog(sessionID: "s", file: nil, limits: limits)
        for _ in 1...25 { log.append(RelayEvent("x")) }
        guard case .gap(let first) = log.read(after: 3) else { Issue.record("expected a gap"); return }
        #expect(first == 16)
        #expect(Self.seqs(log.read(after: 15)).first == 16)
    }

    @Test func aReaderBehindTheTailReadsTheFileInOrder() {
        let dir = Self.tempDir()
        var limits = SessionLog.Limits()
        limits.tailEvents = 8
        let log = SessionLog(sessionID: "s", file: LogFile(path: dir + "/events.jsonl", appending: true), limits: limits)
        for _ in 1...300 { log.append(RelayEvent("x", text: String(repeating: "y", count: 50))) }
        var cursor = 0
        var seen: [Int] = []
        while case .events(let e) = log.read(after: cursor, limit: 64) {
            seen += e.map(\.seq)
            cursor = e.last!.seq
        }
        #expect(seen == Array(1...300))
    }

    @Test func anEndedSessionKeepsLittleInMemoryAndReplaysFromItsFile() {
        let dir = Self.tempDir()
        let withFile = SessionLog(sessionID: "s", file: LogFile(path: dir + "/events.jsonl", appending: true))
        let memoryOnly = SessionLog(sessionID: "s", file: nil)
        for log in [withFile, memoryOnly] {
            for _ in 1...200 { log.append(RelayEvent("x")) }
            log.append(RelayEvent("session_end"), final: true)
            log.compact()
        }
        var cursor = 0
        var seen: [Int] = []
        while case .events(let e) = withFile.read(after: cursor) {
            seen += e.map(\.seq)
            cursor = e.last!.seq
        }
        #expect(seen == Array(1...201))
        guard case .gap(let first) = memoryOnly.read(after: 0) else { Issue.record("expected a gap"); return }
        #expect(first == 201 - 63)
    }

    @Test func waitingReadersWakeOnAppendAndOnCancel() async {
        let log = SessionLog(sessionID: "s", file: nil)
        async let woke: Void = log.wait(after: 0)
        try? await Task.sleep(for: .milliseconds(10))
        log.append(RelayEvent("x"))
        await woke
        let t = Task { await log.wait(after: 1) }
        t.cancel()
        await t.value  // returns: cancellation is not lost
    }

    @Test func aHostileFileGivesGapsNeverWrongSeqs() throws {
        let dir = Self.tempDir()
        let path = dir + "/events.jsonl"
        func line(_ seq: Int, _ sid: String = "s") -> String { #"{"type":"x","ts":1,"session_id":"\#(sid)","seq":\#(seq)}"# }
        let text = [
            line(1), "garbage", line(2), #"{"type":"x","session_id":"s","seq":"3"}"#, line(3, "other"), line(3), line(3),
            String(line(4).prefix(20)), line(7), "[1,2]", line(8), line(99_999_999_999), "",
        ].joined(separator: "\n")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let file = LogFile(path: path, appending: false)
        var cursor = 0
        var out: [String] = []
        for _ in 0..<20 {
            switch file.read(after: cursor, before: 9, limit: 100, sessionID: "s") {
            case .events(let e):
                out += e.map { "\($0.seq)" }
                cursor = e.last!.seq
            case .gap(let first):
                out.append("gap\(first)")
                if first >= 9 { break }
                cursor = first - 1
            }
            if cursor >= 8 || out.last == "gap9" { break }
        }
        #expect(out == ["1", "2", "3", "gap7", "7", "8"])
    }

    @Test func aSymlinkedLogIsNotRead() throws {
        let dir = Self.tempDir()
        try "secret\n".write(toFile: dir + "/target", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/events.jsonl", withDestinationPath: dir + "/target")
        var lines = 0
        LogFile.scan(path: dir + "/events.jsonl", from: 0) { _ in
            lines += 1
            return true
        }
        #expect(lines == 0)
        // Nor appended to.
        let w = LogFile(path: dir + "/events.jsonl", appending: true)
        w.append(seq: 1, line: Array("x".utf8), cap: 1 << 20)
        #expect(try String(contentsOfFile: dir + "/target", encoding: .utf8) == "secret\n")
    }

    @Test func attachRequestsAreCheckedStrictly() throws {
        #expect(AttachRequest.parse(#"{"tool":"claude"}"#) == nil)
        #expect(AttachRequest.parse("not json") == nil)
        #expect(try AttachRequest.parse(#"{"attach":"abc","after_seq":5}"#)?.get() == AttachRequest(sessionID: "abc", afterSeq: 5))
        #expect(try AttachRequest.parse(#"{"attach":"abc"}"#)?.get().afterSeq == 0)
        for bad in [
            #"{"attach":7}"#, #"{"attach":null}"#, #"{"attach":""}"#, #"{"attach":["a"]}"#, #"{"attach":"a\u0001"}"#,
            #"{"attach":"a","after_seq":-1}"#, #"{"attach":"a","after_seq":1.5}"#, #"{"attach":"a","after_seq":1e300}"#,
            #"{"attach":"a","after_seq":"3"}"#, #"{"attach":"a","after_seq":1099511627776}"#,
        ] {
            guard case .failure? = AttachRequest.parse(bad) else {
                Issue.record("accepted \(bad)")
                continue
            }
        }
    }

    @Test func activityFollowsTurnsAndPermissions() {
        var a = SessionActivity()
        let now = ContinuousClock.now
        #expect(a.state == .idle && !a.isBusy)
        a.turnStarted(now: now)
        #expect(a.state == .running)
        var req = RelayEvent("permission_request")
        req.requestID = .int(0)
        a.event(req, now: now)
        #expect(a.state == .waitingPermission)
        a.answered("0")
        #expect(a.state == .running)
        a.event(RelayEvent("response"), now: now)
        #expect(a.state == .idle)
        a.event(RelayEvent("session_end"), now: now)
        #expect(a.state == .ended && !a.isBusy)
    }
}
