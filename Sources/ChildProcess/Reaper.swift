import CSpawn
import Foundation

/// Owns every `wait` of this process, on one dedicated thread, so a pid is tracked from spawn to reap.
///
/// - Forks happen under the reaper's lock and register the pid before the lock is released, so the
///   reaper can never see a child's exit before it knows the child.
/// - The thread peeks at exits with `waitid(WNOWAIT)`: the zombie still holds its pid (and process
///   group), so deciding whose exit it is and reaping it happen under the lock, without pid reuse.
/// - Signals go through ``signalGroup(_:_:)``, which only signals a group whose leader is not yet
///   reaped; at the leader's reap the rest of its group is SIGKILLed while the zombie pins the id.
/// - Exits of unknown pids are reaped and dropped: as PID 1 of a container (no docker-init) the worker
///   inherits orphaned grandchildren. One blocking thread (no poll loop per child) keeps thousands of
///   idle children free; nothing else in this process may call `wait*`.
/// `@unchecked Sendable`: all state is guarded by `condition` (a Mutex cannot replace it: the idle thread waits on it).
final class Reaper: @unchecked Sendable {
    static let shared = Reaper()

    private let condition = NSCondition()
    /// Spawned and not yet reaped.
    private var running = Set<pid_t>()
    private var finished: [pid_t: ExitStatus] = [:]
    private var waiters: [pid_t: [CheckedContinuation<ExitStatus, Never>]] = [:]
    /// Bumped by every fork; lets the idle thread tell "no children" from "a child just appeared".
    private var forks: UInt64 = 0

    private init() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "child-reaper"
        thread.start()
    }

    /// Runs `fork` (which creates at most one child, fills `child` and returns 0, or returns an errno)
    /// under the lock and registers the new pid before any exit can be collected.
    func spawn(_ child: inout lab_child, _ fork: (inout lab_child) -> Int32) -> Int32 {
        condition.lock()
        defer { condition.unlock() }
        let rc = fork(&child)
        guard rc == 0, child.pid > 0 else { return rc }
        running.insert(child.pid)
        finished[child.pid] = nil  // a stale status of an earlier process with this pid
        forks &+= 1
        condition.broadcast()
        return rc
    }

    /// Waits for the child's exit (returns at once if it already exited).
    func exitStatus(of pid: pid_t) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            condition.lock()
            if !running.contains(pid) {
                let status = finished[pid] ?? ExitStatus(code: -1)
                condition.unlock()
                continuation.resume(returning: status)
            } else {
                waiters[pid, default: []].append(continuation)
                condition.unlock()
            }
        }
    }

    /// Non-blocking check.
    func hasExited(_ pid: pid_t) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return !running.contains(pid)
    }

    /// Signals the child's process group if its leader has not been reaped yet (else the id may belong
    /// to someone else by now). Returns whether a signal was sent.
    func signalGroup(_ pid: pid_t, _ signal: Int32) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard running.contains(pid) else { return false }
        return kill(-pid, signal) == 0
    }

    /// Forget a status nobody will ask for again (keeps `finished` from growing).
    func forget(_ pid: pid_t) {
        condition.lock()
        if !running.contains(pid), waiters[pid] == nil { finished[pid] = nil }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            let seen = forks
            condition.unlock()
            let pid = lab_wait_any_exited()
            if pid > 0 {
                collect(pid)
            } else if errno == ECHILD {
                idle(since: seen)
            }
        }
    }

    /// `pid` has exited and is still a zombie.
    private func collect(_ pid: pid_t) {
        condition.lock()
        let ours = running.contains(pid)
        // The zombie pins the group id: this kill can only reach what is left of our child's group.
        if ours { _ = kill(-pid, SIGKILL) }
        var code: Int32 = -1
        let reaped = lab_reap(pid, &code)
        guard ours else {
            condition.unlock()
            return
        }
        let status = ExitStatus(code: reaped == 1 ? code : -1)
        running.remove(pid)
        finished[pid] = status
        let resumed = waiters.removeValue(forKey: pid) ?? []
        condition.unlock()
        for continuation in resumed { continuation.resume(returning: status) }
    }

    /// No children at all: wait for the next fork (as PID 1 or subreaper, also re-check every second,
    /// since orphans can be re-parented to us at any time).
    private func idle(since seen: UInt64) {
        condition.lock()
        var resumed: [(CheckedContinuation<ExitStatus, Never>, ExitStatus)] = []
        if forks == seen, !running.isEmpty {
            // Registered before the empty `waitid`, yet not our children: someone else reaped them.
            for pid in running {
                let status = ExitStatus(code: -1)
                finished[pid] = status
                for continuation in waiters.removeValue(forKey: pid) ?? [] { resumed.append((continuation, status)) }
            }
            running.removeAll()
        }
        if forks == seen {
            if lab_adopts_orphans() != 0 {
                _ = condition.wait(until: Date().addingTimeInterval(1))
            } else {
                while forks == seen { condition.wait() }
            }
        }
        condition.unlock()
        for (continuation, status) in resumed { continuation.resume(returning: status) }
    }
}
