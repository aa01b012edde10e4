import CSpawn
import Foundation

/// Collects the exit status of every child this process spawns, on one dedicated thread.
///
/// One blocking `waitpid(-1)` thread (instead of a thread or a poll loop per child) keeps the cost of
/// thousands of idle children at zero. It is safe because every child of this process is spawned
/// through `lab_spawn`; nothing else here calls `waitpid`.
final class Reaper: @unchecked Sendable {
    static let shared = Reaper()

    private let condition = NSCondition()
    private var running = Set<pid_t>()
    private var finished: [pid_t: ExitStatus] = [:]
    private var waiters: [pid_t: [CheckedContinuation<ExitStatus, Never>]] = [:]

    private init() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "child-reaper"
        thread.start()
    }

    /// Must be called right after a successful spawn.
    func track(_ pid: pid_t) {
        condition.lock()
        if finished[pid] == nil { running.insert(pid) }
        condition.signal()
        condition.unlock()
    }

    /// Waits for the child's exit (returns at once if it already exited).
    func exitStatus(of pid: pid_t) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            condition.lock()
            if let status = finished[pid] {
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
        return finished[pid] != nil
    }

    /// Forget a status nobody will ask for again (keeps `finished` from growing).
    func forget(_ pid: pid_t) {
        condition.lock()
        if waiters[pid] == nil { finished[pid] = nil }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while running.isEmpty { condition.wait() }
            condition.unlock()
            var raw: Int32 = 0
            let pid = waitpid(-1, &raw, 0)
            if pid > 0 {
                let status = ExitStatus(code: lab_wait_status_code(raw))
                condition.lock()
                running.remove(pid)
                finished[pid] = status
                let resumed = waiters.removeValue(forKey: pid) ?? []
                condition.unlock()
                for continuation in resumed { continuation.resume(returning: status) }
            } else if errno == ECHILD {
                // Tracked pids that are not (or no longer) our children: nothing left to wait for.
                condition.lock()
                let lost = running
                running.removeAll()
                var resumed: [(CheckedContinuation<ExitStatus, Never>, ExitStatus)] = []
                for pid in lost {
                    let status = ExitStatus(code: -1)
                    finished[pid] = status
                    for continuation in waiters.removeValue(forKey: pid) ?? [] { resumed.append((continuation, status)) }
                }
                condition.unlock()
                for (continuation, status) in resumed { continuation.resume(returning: status) }
            }
        }
    }
}
