import Logging
import NIOWebSocket
import RelayProtocol
import ServiceLifecycle
import Synchronization
import Testing

@testable import LabCtrlCore

/// The hub in-process: a fake backend, fake client connections and a manual clock. Every wait is for an
/// event (a start, a sent event, a sleeper on the clock); time moves only through ``ManualClock/advance(by:)``.
@Suite(.timeLimit(.minutes(1))) struct WorkerHubTests {
    let alice = UserID("alice")!
    let bob = UserID("bob")!

    // ---- spawn / adopt -------------------------------------------------------------------------

    @Test func adoptedWorkersAreUsedWithoutAStart() async throws {
        let f = Fixture()
        f.backend.state.withLock { $0.adoptable = [FakeBackend.handle(alice, "adopted-1", spec: "v1", adopted: true)] }
        try await f.running { hub in
            #expect(try await hub.adoptExisting() == 1)
            let conn = f.connection(alice)
            #expect(try await hub.ensure(alice, attaching: conn).id == "adopted-1")
            #expect(f.backend.starts.isEmpty)
            let info = try #require(await hub.snapshot().first)
            #expect(info.state == "running" && info.adopted && !info.outdated && info.connections == 1)
        }
    }

    @Test func concurrentConnectsOfOneUserShareOneBringUp() async throws {
        let f = Fixture()
        f.backend.state.withLock { $0.hold = true }
        try await f.running { hub in
            let n = 20
            let progress = Recorder<[Int: [String]]>([:])
            let (subscribed, subscribe) = AsyncStream<Void>.makeStream()
            let results = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<n {
                    let conn = f.connection(alice, id: i)
                    group.addTask {
                        try await hub.ensure(alice, attaching: conn) { p in
                            progress.update { $0[i, default: []].append(p.status) }
                            if p.status == "lab.creating" { subscribe.yield() }
                        }.id
                    }
                }
                // Every caller is subscribed (a late one is replayed `lab.creating`) and waits on the one start.
                for await _ in subscribed.prefix(n) {}
                f.backend.release()
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(results.count == 1)
            #expect(f.backend.starts == [alice])
            #expect(Set(progress.value.values) == [["lab.creating", "lab.starting", "lab.waiting"]])
            #expect(await hub.snapshot().first?.connections == n)
        }
    }

    @Test func aFailedStartFailsEveryWaiterAndTheNextConnectStartsAgain() async throws {
        let f = Fixture()
        f.backend.state.withLock {
            $0.hold = true
            $0.failStart = "no room for the worker"
        }
        try await f.running { hub in
            let (subscribed, subscribe) = AsyncStream<Void>.makeStream()
            let errors = await withTaskGroup(of: String.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        do {
                            _ = try await hub.ensure(alice) { p in if p.status == "lab.creating" { subscribe.yield() } }
                            return "started"
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                for await _ in subscribed.prefix(5) {}
                f.backend.release()
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(errors == Array(repeating: "no room for the worker", count: 5))
            #expect(await hub.snapshot().isEmpty)
            f.backend.state.withLock {
                $0.hold = false
                $0.failStart = nil
            }
            _ = try await hub.ensure(alice)
            #expect(f.backend.starts == [alice, alice])
        }
    }

    @Test func aWorkerThatNeverAnswersIsStoppedAsAFailedStart() async throws {
        let f = Fixture()
        f.backend.state.withLock { $0.failReady = true }
        try await f.running { hub in
            await #expect(throws: WorkerStartError.self) { try await hub.ensure(alice) }
            #expect(f.backend.stops.map(\.reason) == [.failedStart])
            #expect(await hub.snapshot().isEmpty)
        }
    }

    // ---- death -------------------------------------------------------------------------------

    @Test func aWorkerDeathClosesItsConnectionsWithTheReason() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            let handle = try await hub.ensure(alice, attaching: conn)
            // A proxy that lost its upstream asks why, before the backend says so.
            async let reason = hub.deathReason(of: handle.id, wait: .seconds(2))
            await f.clock.waitForSleepers(1)
            await hub.workerDied(WorkerDeath(user: alice, id: handle.id, reason: "out of memory (OOM killed)", oomKilled: true, exitCode: 137))
            #expect(await reason?.reason == "out of memory (OOM killed)")  // answered by the event, no time passed
            let closed = try #require(conn.closed)
            #expect(closed.code == .unexpectedServerError && closed.reason == "worker stopped")
            let error = try #require(conn.events.last)
            #expect(error.type == "error" && error.text?.stringValue?.contains("out of memory") == true)
            #expect(error.metadata?["lab"]?["reason"]?.stringValue == "oom")
            #expect(f.backend.stops.map(\.reason) == [.dead])
            #expect(await hub.snapshot().isEmpty)
            #expect(await !hub.isAlive(handle.id))
        }
    }

    @Test func anUnresponsiveWorkerIsReplacedAndItsClientsTold() async throws {
        let f = Fixture()
        try await f.running { hub in
            let (a, b) = (f.connection(alice, id: 1), f.connection(alice, id: 2))
            let handle = try await hub.ensure(alice, attaching: a)
            _ = try await hub.ensure(alice, attaching: b)
            await hub.workerUnresponsive(handle.id, detail: "the worker stopped answering pings")
            await hub.workerUnresponsive(handle.id, detail: "the second proxy noticed too")  // no second stop
            for c in [a, b] {
                let closed = try #require(c.closed)
                #expect(closed.code == .unexpectedServerError && closed.reason == "worker not answering")
                let error = try #require(c.events.last)
                #expect(error.type == "error" && error.metadata?["lab"]?["reason"]?.stringValue == "unresponsive")
            }
            #expect(f.backend.stops.map(\.reason) == [.unresponsive])
            // Not locked out: the next connect starts a new worker.
            let next = try await hub.ensure(alice, attaching: f.connection(alice, id: 3))
            #expect(next.id != handle.id && f.backend.starts == [alice, alice])
        }
    }

    @Test func aMemoryKillIsToldToTheClientsWithTheLimit() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            let handle = try await hub.ensure(alice, attaching: conn)
            await hub.incident(.memoryKill(user: alice, id: handle.id, limitBytes: 512 << 20))
            await hub.incident(.memoryKill(user: alice, id: "another-container", limitBytes: 1 << 20))  // not hers
            let error = try #require(conn.events.last)
            #expect(error.type == "error" && error.text?.stringValue?.contains("ran out of memory (limit 512 MiB)") == true)
            #expect(error.metadata?["lab"]?["reason"]?.stringValue == "oom")
            #expect(conn.events.filter { $0.type == "error" }.count == 1)
            // The worker itself lives on (a tool was killed, not it): nothing is stopped or closed.
            #expect(conn.closed == nil && f.backend.stops.isEmpty)
        }
    }

    @Test func afterTheEngineIsBackWorkersThatDiedMeanwhileAreReported() async throws {
        let f = Fixture()
        try await f.running { hub in
            let (a, b) = (f.connection(alice, id: 1), f.connection(bob, id: 2))
            let gone = try await hub.ensure(alice, attaching: a)
            let kept = try await hub.ensure(bob, attaching: b)
            f.backend.vanish(gone.id)
            await hub.incident(.reconnected)
            let closed = try #require(a.closed)
            #expect(closed.code == .unexpectedServerError)
            #expect(a.events.last?.text?.stringValue?.contains("while the Docker engine was unreachable") == true)
            #expect(b.closed == nil && b.events.filter { $0.type == "error" }.isEmpty)
            #expect(f.backend.stops.map(\.id) == [gone.id])
            #expect(await hub.snapshot().map(\.id) == [kept.id])
            // No duplicate: the next connect of alice starts one new worker, bob keeps his.
            let next = try await hub.ensure(alice, attaching: f.connection(alice, id: 3))
            #expect(next.id != gone.id && f.backend.starts == [alice, bob, alice])
        }
    }

    @Test func anUnresponsiveReportForAnotherWorkerIsIgnored() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            _ = try await hub.ensure(alice, attaching: conn)
            await hub.workerUnresponsive("pid:999999", detail: "a stale report")
            #expect(conn.closed == nil && f.backend.stops.isEmpty)
        }
    }

    @Test func aDeathReasonNobodyReportsIsUnknownAfterTheWait() async throws {
        let f = Fixture()
        try await f.running { hub in
            async let reason = hub.deathReason(of: "pid:4242", wait: .seconds(2))
            await f.clock.waitForSleepers(1)
            f.clock.advance(by: .seconds(2))
            #expect(await reason == nil)
        }
    }

    // ---- idle warning, reaping ------------------------------------------------------------------

    @Test func theIdleWarningAndItsCancellationArriveInOrder() async throws {
        let f = Fixture()
        try await f.running { hub in
            let a = f.connection(alice, id: 1)
            let b = f.connection(alice, id: 2)
            _ = try await hub.ensure(alice, attaching: a)
            _ = try await hub.ensure(alice, attaching: b)
            f.clock.advance(by: .seconds(89))
            await hub.reapPass()
            #expect(a.statuses.isEmpty)
            f.clock.advance(by: .seconds(1))
            await hub.reapPass()
            #expect(a.statuses == ["lab.idle_warning"] && b.statuses == ["lab.idle_warning"])
            #expect(a.events.first?.metadata?["seconds_left"]?.intValue == 10)
            // A keep-alive is not activity; a user frame on one connection voids the warning for all.
            a.frame(.keepalive, at: f.clock.now)
            a.frame(.other, at: f.clock.now)
            await b.waitForEvents(2)
            #expect(a.statuses == ["lab.idle_warning", "lab.idle_warning_cancelled"])
            #expect(b.statuses == ["lab.idle_warning", "lab.idle_warning_cancelled"])
            #expect(f.backend.stops.isEmpty)
        }
    }

    @Test func aVoidReportOlderThanTheWarningIsIgnored() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            _ = try await hub.ensure(alice, attaching: conn)
            let before = f.clock.now
            f.clock.advance(by: .seconds(90))
            await hub.reapPass()
            await hub.voidWarning(alice, at: before)  // overtaken by the warning
            #expect(conn.statuses == ["lab.idle_warning"])
            f.clock.advance(by: .seconds(10))
            await hub.reapPass()
            #expect(conn.statuses == ["lab.idle_warning", "lab.stopped"])
        }
    }

    @Test func idleWorkersAreReapedAtTheTimeoutWithNoticeToTheirClients() async throws {
        let f = Fixture()
        try await f.running { hub in
            _ = try await hub.ensure(bob)  // no connection: reaped without a warning
            let conn = f.connection(alice)
            _ = try await hub.ensure(alice, attaching: conn)
            f.clock.advance(by: .seconds(90))  // the warning lead before the timeout
            await hub.reapPass()
            #expect(f.backend.stops.isEmpty && conn.statuses == ["lab.idle_warning"])
            f.clock.advance(by: .seconds(9))
            await hub.reapPass()
            #expect(f.backend.stops.isEmpty)
            f.clock.advance(by: .seconds(1))
            await hub.reapPass()
            #expect(Set(f.backend.stops.map(\.reason)) == [.idle] && f.backend.stops.count == 2)
            #expect(conn.statuses == ["lab.idle_warning", "lab.stopped"])
            #expect(conn.events.last?.metadata?["reason"]?.stringValue == "idle")
            #expect(conn.closed?.code == .goingAway && conn.closed?.reason == "idle timeout")
            #expect(await hub.snapshot().isEmpty)
        }
    }

    @Test func busyWorkersAreKeptUntilTheTurnCapThenReapedAsStuck() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            _ = try await hub.ensure(alice, attaching: conn)
            conn.workerEvent("input_ack", ackText: "a long task", at: f.clock.now)
            f.clock.advance(by: .seconds(500))  // far past the idle timeout: a turn in flight is activity
            await hub.reapPass()
            #expect(conn.statuses.isEmpty && f.backend.stops.isEmpty)
            #expect(await hub.snapshot().first?.busy == true)
            // The turn ends, a permission prompt follows: pending, it keeps the worker too.
            conn.workerEvent("response", at: f.clock.now)
            conn.workerEvent("permission_request", requestKey: "s:p1", at: f.clock.now)
            f.clock.advance(by: .seconds(500))
            await hub.reapPass()
            #expect(conn.statuses.isEmpty && f.backend.stops.isEmpty)
            // Past the cap (1000 s) the busy time counts as idle: warned, then stopped as stuck.
            f.clock.advance(by: .seconds(500))
            await hub.reapPass()
            #expect(conn.statuses == ["lab.idle_warning"])
            f.clock.advance(by: .seconds(10))
            await hub.reapPass()
            #expect(conn.statuses == ["lab.idle_warning", "lab.stopped"])
            #expect(f.backend.stops.map(\.reason) == [.stuck])
            #expect(conn.closed?.reason == "turn time limit")
        }
    }

    @Test func anOutdatedWorkerIsKeptWhileInUseAndReplacedOnceIdle() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            let first = try await hub.ensure(alice, attaching: conn)
            f.backend.state.withLock { $0.spec = "v2" }
            for _ in 0..<3 { await hub.reapPass() }
            #expect(f.backend.stops.isEmpty)
            #expect(await hub.snapshot().first?.outdated == true)
            await hub.detach(conn)
            await hub.reapPass()
            #expect(f.backend.stops.map(\.reason) == [.specChanged])
            let second = try await hub.ensure(alice)
            #expect(second.id != first.id && second.specHash == "v2")
        }
    }

    @Test func anOutdatedIdleWorkerIsReplacedAtTheNextConnect() async throws {
        let f = Fixture()
        try await f.running { hub in
            let first = try await hub.ensure(alice)
            f.backend.state.withLock { $0.spec = "v2" }
            let second = try await hub.ensure(alice, attaching: f.connection(alice))
            #expect(second.id != first.id)
            #expect(f.backend.stops.map(\.reason) == [.specChanged] && f.backend.starts == [alice, alice])
        }
    }

    @Test func theReaperServicePassesOnTheHubClock() async throws {
        let f = Fixture(idle: 3, lead: 1)
        try await f.running { hub in
            _ = try await hub.ensure(alice)
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await ReaperService(hub: hub, interval: .seconds(1), logger: Logger(label: "test")).run() }
                for _ in 0..<3 {
                    await f.clock.waitForSleepers(1)
                    f.clock.advance(by: .seconds(1))
                }
                await f.backend.waitForStops(1)
                #expect(f.backend.stops.map(\.reason) == [.idle])
                group.cancelAll()
            }
        }
    }

    @Test func theReaperWakesAtTheNextDeadlineNotItsInterval() async throws {
        let f = Fixture(idle: 3, lead: 1)
        let start = f.clock.now
        try await f.running { hub in
            _ = try await hub.ensure(alice)
            try await withThrowingDiscardingTaskGroup { group in
                // A 30 s housekeeping interval: a fixed-period reaper would first look at 30 s.
                group.addTask { try await ReaperService(hub: hub, interval: .seconds(30), logger: Logger(label: "test")).run() }
                // The worker's start re-arms the reaper once, so its first sleep may be replaced at once.
                var planned: ContinuousClock.Instant?
                while planned == nil {
                    await f.clock.waitForSleepers(1)
                    planned = f.clock.sleeperDeadlines.first
                }
                let wake = try #require(planned)
                // Due at the 3 s timeout, acted on within the slack of max(1 s, 10 %).
                #expect(wake - start >= .seconds(3) && wake - start <= .seconds(4))
                #expect(f.backend.stops.isEmpty)
                f.clock.advance(by: wake - f.clock.now)
                await f.backend.waitForStops(1)
                #expect(f.backend.stops.map(\.reason) == [.idle])
                group.cancelAll()
            }
        }
    }

    /// The hub's service stops first and ends the reaper's wake-ups; the reaper must still wait for its own
    /// turn, since a service that returns while another is stopping fails the group (labctrl exited 1 on SIGTERM).
    @Test func gracefulShutdownOfTheHubServicesSucceeds() async throws {
        for _ in 0..<20 {
            let f = Fixture()
            let logger = Logger(label: "test")
            let group = ServiceGroup(
                configuration: .init(
                    services: [
                        ReaperService(hub: f.hub, interval: .seconds(30), logger: logger), YieldingOnShutdown(),
                        HubLifecycleService(hub: f.hub, logger: logger),
                    ], logger: logger))
            try await withThrowingTaskGroup { tasks in
                tasks.addTask { try await group.run() }
                _ = try await f.hub.ensure(alice)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(f.backend.state.withLock { $0.shutDown })
        }
    }

    @Test func aWarningLeadLongerThanTheTimeoutIsClamped() {
        var config = LabConfig()
        config.idleTimeout = 3
        config.idleWarning = 10
        let settings = WorkerHub.Settings(config)
        #expect(settings.clampedWarning == 10)
        #expect(settings.policy.warningLead == .seconds(3))
        config.idleWarning = 2
        #expect(WorkerHub.Settings(config).clampedWarning == nil)
        #expect(ReaperPolicy(idleTimeout: .seconds(100), warningLead: .seconds(1), maxTurn: .seconds(1)).slack == .seconds(10))
        #expect(ReaperPolicy(idleTimeout: .seconds(3), warningLead: .seconds(1), maxTurn: .seconds(1)).slack == .seconds(1))
    }

    // ---- caps, admin stop, shutdown ------------------------------------------------------------

    @Test func theWorkerCapRefusesANewUser() async throws {
        let f = Fixture(maxWorkers: 1)
        try await f.running { hub in
            _ = try await hub.ensure(alice)
            await #expect(throws: WorkerStartError.self) { try await hub.ensure(bob) }
            _ = try await hub.ensure(alice)  // the existing worker is still served
            #expect(f.backend.starts == [alice])
        }
    }

    @Test func perUserAndTotalConnectionCaps() throws {
        let registry = ConnectionRegistry(maxPerUser: 2, maxTotal: 3)
        let a1 = try registry.admit(alice, token: "a").get()
        _ = try registry.admit(alice, token: "a").get()
        #expect(registry.admit(alice, token: "a") == .failure(.perUser))
        _ = try registry.admit(bob, token: "b").get()
        #expect(registry.admit(bob, token: "b") == .failure(.total))
        registry.release(a1)
        #expect(registry.count(of: alice) == 1)
        #expect((try? registry.admit(bob, token: "b").get()) != nil)
    }

    @Test func anAdminStopTellsTheClientsAndWaitsForTheBackend() async throws {
        let f = Fixture()
        try await f.running { hub in
            let conn = f.connection(alice)
            _ = try await hub.ensure(alice, attaching: conn)
            await hub.stop(alice, reason: .admin)
            #expect(conn.statuses == ["lab.stopped"] && conn.closed?.reason == "stopped by administrator")
            #expect(f.backend.stops.map(\.reason) == [.admin])
            #expect(await hub.snapshot().isEmpty)
        }
    }

    @Test func shutdownClosesEveryClientAndRefusesNewWork() async throws {
        let f = Fixture()
        let conn = f.connection(alice)
        try await f.running { hub in
            _ = try await hub.ensure(alice, attaching: conn)
        }
        // `running` ended with a shutdown, and `run()` returned.
        #expect(conn.statuses == ["lab.shutdown"] && conn.closed?.code == .goingAway)
        #expect(f.backend.state.withLock { $0.shutDown })
        await #expect(throws: WorkerStartError.self) { try await f.hub.ensure(bob) }
    }
}

// ---- fixtures ------------------------------------------------------------------------------------

/// A hub on a fake backend and a manual clock (idle timeout 100 s, warning lead 10 s, turn cap 1000 s).
struct Fixture {
    let clock = ManualClock()
    let backend = FakeBackend()
    let hub: WorkerHub

    init(maxWorkers: Int = 0, idle: Double = 100, lead: Double = 10, maxTurn: Double = 1000) {
        var config = LabConfig()
        config.maxWorkers = maxWorkers
        config.idleTimeout = idle
        config.idleWarning = lead
        config.maxTurn = maxTurn
        hub = WorkerHub(
            backend: backend, settings: .init(config), metrics: LabMetrics(), logger: Logger(label: "test"), clock: clock.hub,
            readiness: backend.readiness)
    }

    func connection(_ user: UserID, id: Int = 1) -> FakeConnection { FakeConnection(id: id, user: user, now: clock.now) }

    /// Runs `body` with the hub's ``WorkerHub/run()`` going, then shuts the hub down.
    func running(_ body: (WorkerHub) async throws -> Void) async throws {
        let hub = self.hub
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await hub.run() }
            do {
                try await body(hub)
            } catch {
                await hub.shutdown()
                throw error
            }
            await hub.shutdown()
        }
    }
}

/// Gives the services after it in a group's shutdown order time to run (and, if wrong, to return early).
struct YieldingOnShutdown: Service {
    func run() async throws {
        try? await gracefulShutdown()
        for _ in 0..<200 { await Task.yield() }
    }
}

/// A value tasks update concurrently.
final class Recorder<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    var value: Value { state.withLock { $0 } }
    func update(_ change: (inout Value) -> Void) { state.withLock { change(&$0) } }
}

/// A backend that records what it is asked and can hold starts until ``release()``.
final class FakeBackend: WorkerBackend {
    let kind = "fake"

    struct State {
        var spec = "v1"
        var adoptable: [WorkerHandle] = []
        var starts: [UserID] = []
        var stops: [(id: String, reason: StopReason)] = []
        var hold = false
        var failStart: String?
        var failReady = false
        var shutDown = false
        /// Workers that died without an incident (while the engine was away).
        var vanished: Set<String> = []
        var alive: Set<String> {
            Set((0..<starts.count).map { "fake-\($0 + 1)" } + adoptable.map(\.id)).subtracting(stops.map(\.id)).subtracting(vanished)
        }
        var held: [CheckedContinuation<Void, Never>] = []
        var watchers: [(starts: Int, stops: Int, continuation: CheckedContinuation<Void, Never>)] = []

        mutating func ready() -> [CheckedContinuation<Void, Never>] {
            let (s, t) = (starts.count, stops.count)
            let done = watchers.filter { s >= $0.starts && t >= $0.stops }.map(\.continuation)
            watchers.removeAll { s >= $0.starts && t >= $0.stops }
            return done
        }
    }
    let state = Mutex(State())

    var currentSpecHash: String { state.withLock { $0.spec } }
    var starts: [UserID] { state.withLock { $0.starts } }
    var stops: [(id: String, reason: StopReason)] { state.withLock { $0.stops } }

    static func handle(_ user: UserID, _ id: String, spec: String, adopted: Bool = false) -> WorkerHandle {
        WorkerHandle(user: user, id: id, address: WorkerAddress(host: "127.0.0.1", port: 9, token: "t"), specHash: spec, createdAt: 0, adopted: adopted)
    }

    /// Readiness as this backend says: at once, or never (`failReady`).
    var readiness: WorkerReadiness {
        WorkerReadiness { _, _, _, _, _, _ in
            if self.state.withLock({ $0.failReady }) { throw WorkerStartError("the worker did not answer") }
        }
    }

    func adoptExisting() async throws -> [WorkerHandle] { state.withLock { $0.adoptable } }

    func start(user: UserID, progress: @escaping @Sendable (StartStep) -> Void) async throws -> WorkerHandle {
        progress(.creating)
        let (n, hold, ready) = state.withLock { s in
            s.starts.append(user)
            return (s.starts.count, s.hold, s.ready())
        }
        for c in ready { c.resume() }
        if hold { await withCheckedContinuation { c in state.withLock { $0.held.append(c) } } }
        progress(.starting)
        let (fail, spec) = state.withLock { ($0.failStart, $0.spec) }
        if let fail { throw WorkerStartError(fail) }
        return Self.handle(user, "fake-\(n)", spec: spec)
    }

    /// Lets every held start go on.
    func release() {
        let held = state.withLock { s in
            defer { s.held = [] }
            return s.held
        }
        for c in held { c.resume() }
    }

    func vanish(_ id: String) { state.withLock { _ = $0.vanished.insert(id) } }

    func waitForStarts(_ n: Int) async { await waitFor(starts: n, stops: 0) }
    func waitForStops(_ n: Int) async { await waitFor(starts: 0, stops: n) }

    private func waitFor(starts: Int, stops: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.starts.count >= starts, s.stops.count >= stops { return true }
                s.watchers.append((starts, stops, c))
                return false
            }
            if now { c.resume() }
        }
    }

    func stop(_ handle: WorkerHandle, reason: StopReason) async {
        let ready = state.withLock { s in
            s.stops.append((handle.id, reason))
            return s.ready()
        }
        for c in ready { c.resume() }
    }

    func watchIncidents(_ report: @escaping @Sendable (WorkerIncident) async -> Void) async throws {}
    func aliveWorkerIDs() async throws -> Set<String> { state.withLock { $0.alive } }
    func isHealthy() async -> Bool { true }
    func shutdown() async { state.withLock { $0.shutDown = true } }
}

/// A client connection as the hub sees it; frames and worker events are fed by the test, with the
/// warning rules of ``ClientConnection``.
final class FakeConnection: HubConnection {
    let id: Int
    let user: UserID
    let sessionID: String

    private struct State {
        var activity: ConnectionActivity
        var inbox: HubInbox?
        var hub: HubInbox?
        var events: [RelayEvent] = []
        var closed: (code: WebSocketErrorCode, reason: String)?
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state: Mutex<State>

    init(id: Int, user: UserID, now: ContinuousClock.Instant) {
        self.id = id
        self.user = user
        self.sessionID = "s\(id)"
        state = Mutex(State(activity: ConnectionActivity(now: now)))
    }

    var activity: ConnectionActivity { state.withLock { $0.activity } }
    var events: [RelayEvent] { state.withLock { $0.events } }
    var statuses: [String] { events.compactMap(\.status) }
    var closed: (code: WebSocketErrorCode, reason: String)? { state.withLock { $0.closed } }

    func setWarning(_ inbox: HubInbox?) { state.withLock { $0.inbox = inbox } }

    func attached(_ inbox: HubInbox) { state.withLock { $0.hub = inbox } }

    func send(_ event: RelayEvent) { record(event) }

    func terminate(event: RelayEvent?, code: WebSocketErrorCode, reason: String) async -> Bool {
        let first: Bool = state.withLock { s in
            guard s.closed == nil else { return false }
            s.closed = (code, reason)
            return true
        }
        guard first else { return false }
        if let event { record(event) }
        return true
    }

    private func record(_ event: RelayEvent) {
        let ready = state.withLock { s in
            s.events.append(event)
            let n = s.events.count
            let ready = s.watchers.filter { $0.count <= n }.map(\.continuation)
            s.watchers.removeAll { $0.count <= n }
            return ready
        }
        for c in ready { c.resume() }
    }

    func waitForEvents(_ count: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.events.count >= count { return true }
                s.watchers.append((count, c))
                return false
            }
            if now { c.resume() }
        }
    }

    /// A client frame, as the relay reports it (``ClientConnection/clientFrame(_:now:)``).
    func frame(_ kind: ConnectionActivity.ClientFrame, at now: ContinuousClock.Instant) {
        state.withLock { s in
            let wasBusy = s.activity.busySince != nil
            s.activity.clientFrame(kind, now: now)
            if wasBusy, s.activity.busySince == nil { s.hub?.busyEnded() }
            guard kind != .keepalive, let inbox = s.inbox else { return }
            s.inbox = nil
            inbox.warningVoided(user, at: now)
        }
    }

    func workerEvent(_ type: String, ackText: String? = nil, requestKey: String? = nil, at now: ContinuousClock.Instant) {
        state.withLock { s in
            let wasBusy = s.activity.busySince != nil
            _ = s.activity.workerEvent(type, ackText: ackText, requestKey: requestKey, now: now)
            if wasBusy, s.activity.busySince == nil { s.hub?.busyEnded() }
        }
    }
}
