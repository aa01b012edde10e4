import Testing

@testable import LabCtrlCore

@Suite struct ReaperPolicyTests {
    let policy = ReaperPolicy(idleTimeout: .seconds(100), warningLead: .seconds(10), maxTurn: .seconds(1000))
    let t0 = ContinuousClock.now

    func facts(last: Duration, busy: Duration? = nil, conns: Int = 1, warning: (Duration, Duration)? = nil) -> ReaperPolicy.Facts {
        ReaperPolicy.Facts(
            lastActivity: t0 + last, busySince: busy.map { t0 + $0 }, connections: conns,
            warning: warning.map { (t0 + $0.0, t0 + $0.1) })
    }

    @Test func idleWithoutConnectionsIsReapedAtTheTimeout() {
        #expect(policy.decide(facts(last: .zero, conns: 0), now: t0 + .seconds(99)) == .keep)
        #expect(policy.decide(facts(last: .zero, conns: 0), now: t0 + .seconds(100)) == .reap(.idle))
    }

    @Test func openConnectionsGetAWarningFirst() {
        #expect(policy.decide(facts(last: .zero), now: t0 + .seconds(89)) == .keep)
        #expect(policy.decide(facts(last: .zero), now: t0 + .seconds(90)) == .warn(deadline: t0 + .seconds(100)))
        // A late pass still grants the full lead.
        #expect(policy.decide(facts(last: .zero), now: t0 + .seconds(500)) == .warn(deadline: t0 + .seconds(510)))
        let warned = facts(last: .zero, warning: (.seconds(90), .seconds(100)))
        #expect(policy.decide(warned, now: t0 + .seconds(99)) == .keep)
        #expect(policy.decide(warned, now: t0 + .seconds(100)) == .reap(.idle))
    }

    @Test func activityAfterTheWarningCancelsIt() {
        let f = facts(last: .seconds(95), warning: (.seconds(90), .seconds(100)))
        #expect(policy.decide(f, now: t0 + .seconds(120)) == .cancelWarning)
    }

    @Test func busyWorkersAreKeptUntilTheHardCap() {
        #expect(policy.decide(facts(last: .zero, busy: .seconds(1), conns: 0), now: t0 + .seconds(900)) == .keep)
        #expect(policy.decide(facts(last: .zero, busy: .seconds(1), warning: (.seconds(90), .seconds(100))), now: t0 + .seconds(95)) == .cancelWarning)
        // Past the cap: a stuck turn counts as idle, with a warning for open connections.
        #expect(policy.decide(facts(last: .zero, busy: .seconds(1), conns: 0), now: t0 + .seconds(1001)) == .reap(.stuck))
        let d = policy.decide(facts(last: .zero, busy: .seconds(1)), now: t0 + .seconds(1001))
        guard case .warn = d else { Issue.record("expected a warning, got \(d)"); return }
    }
}

@Suite struct ConnectionActivityTests {
    let t0 = ContinuousClock.now

    @Test func turnsAndPrompts() {
        var a = ConnectionActivity(now: t0)
        #expect(a.busySince == nil)
        #expect(a.workerEvent("input_ack", ackText: "hello", now: t0 + .seconds(1)) == .turnStarted)
        #expect(a.workerEvent("input_ack", ackText: "again", now: t0 + .seconds(2)) == nil)  // codex double ack
        #expect(a.busySince == t0 + .seconds(1))
        #expect(a.workerEvent("permission_request", requestKey: "s:p1", now: t0 + .seconds(3)) == .permissionRequested)
        #expect(a.workerEvent("response", now: t0 + .seconds(4)) == nil)
        #expect(a.busySince == t0 + .seconds(3))  // the prompt is still pending
        #expect(a.clientFrame(.permissionResponse("s:p1"), now: t0 + .seconds(10)) == .permissionResolved(waited: .seconds(7)))
        #expect(a.busySince == nil && a.lastUserFrame == t0 + .seconds(10))
    }

    @Test func relayAnsweredCommandsAndKeepalivesAreNotTurnsOrActivity() {
        var a = ConnectionActivity(now: t0)
        for text in ["/cost", " /status ", "/new", "/clear", "set_approval_policy", "raw_request"] {
            #expect(a.workerEvent("input_ack", ackText: text, now: t0) == nil)
        }
        #expect(a.busySince == nil)
        a.clientFrame(.keepalive, now: t0 + .seconds(50))
        #expect(a.lastUserFrame == t0)
        a.clientFrame(.other, now: t0 + .seconds(60))
        #expect(a.lastUserFrame == t0 + .seconds(60))
    }

    @Test func sessionEndClearsEverything() {
        var a = ConnectionActivity(now: t0)
        a.workerEvent("input_ack", ackText: "x", now: t0)
        a.workerEvent("permission_request", requestKey: "i:0", now: t0)
        a.workerEvent("permission_cancelled", requestKey: "i:0", now: t0 + .seconds(1))
        #expect(a.pending.isEmpty)
        a.workerEvent("permission_request", requestKey: "i:1", now: t0)
        a.workerEvent("session_end", now: t0 + .seconds(2))
        #expect(a.busySince == nil)
    }
}

@Suite struct BusyEndTests {
    @Test func theEndOfATurnCountsAsActivity() {
        let t0 = ContinuousClock.now
        var a = ConnectionActivity(now: t0)
        a.clientFrame(.other, now: t0 + .seconds(1))
        a.workerEvent("input_ack", ackText: "long job", now: t0 + .seconds(1))
        a.workerEvent("response", now: t0 + .seconds(600))
        #expect(a.lastUserFrame == t0 + .seconds(1))
        #expect(a.lastActivity == t0 + .seconds(600))
    }
}
