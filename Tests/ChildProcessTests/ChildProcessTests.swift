import ChildProcess
import Foundation
import NIOCore
import Testing

/// Real processes: exit codes, stdin/stdout, the process-group kill and a PTY.
@Suite struct ChildProcessTests {
    func spec(_ script: String, terminal: (rows: UInt16, columns: UInt16)? = nil, grace: Duration = .seconds(5)) -> ChildSpec {
        ChildSpec(
            arguments: ["/bin/sh", "-c", script], environment: ["PATH": "/usr/bin:/bin"], workingDirectory: "/tmp",
            terminal: terminal, stopGrace: grace)
    }

    func collect(_ child: RunningChild) async throws -> String {
        var all = ByteBuffer()
        for try await var chunk in child.output { all.writeBuffer(&chunk) }
        return String(buffer: all)
    }

    @Test func echoesStdinAndReportsExitCode() async throws {
        let (out, status) = try await ChildProcess.run(spec("read l; echo \"got:$l\"; exit 7")) { child in
            try await child.write("hi\n")
            return try await collect(child)
        }
        #expect(out == "got:hi\n")
        #expect(status.code == 7)
    }

    @Test func missingExecutableIsASpawnError() async {
        await #expect(throws: SpawnError.self) {
            _ = try await ChildProcess.run(ChildSpec(arguments: ["/nonexistent/x"], environment: [:], workingDirectory: "/")) { _ in }
        }
    }

    @Test func stopKillsTheWholeGroupIncludingGrandchildren() async throws {
        let pidFile = "/tmp/lab-grandchild-\(UUID().uuidString)"
        let (_, status) = try await ChildProcess.run(spec("trap '' TERM; sleep 300 & echo $! > \(pidFile); echo ready; wait", grace: .milliseconds(300))) {
            child in
            for try await chunk in child.output where String(buffer: chunk).contains("ready") { break }
        }
        #expect(status.code == -9)
        let grandchild = Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
        // The grandchild was SIGKILLed with its group; allow the kernel a moment to finish it.
        var alive = true
        for _ in 0..<100 where alive {
            alive = kill(grandchild, 0) == 0 && !isZombie(grandchild)
            if alive { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(!alive)
    }

    @Test func cancelledCallerStillGivesTheChildItsGrace() async throws {
        let doneFile = "/tmp/lab-graceful-\(UUID().uuidString)"
        defer { unlink(doneFile) }
        // After SIGTERM the child needs a moment (its trap); a cancelled caller must not cut that short with
        // an early SIGKILL. Output goes to /dev/null after "ready": the closed pipes would SIGPIPE the shell.
        let script = "trap 'sleep 0.3; echo graceful > \(doneFile); exit 0' TERM; echo ready; exec >/dev/null 2>&1; while :; do sleep 0.05; done"
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let run = Task {
            try await ChildProcess.run(spec(script)) { child in
                for try await chunk in child.output where String(buffer: chunk).contains("ready") { break }
                readyContinuation.yield()
                try? await Task.sleep(for: .seconds(300))  // until cancelled
            }
        }
        for await _ in ready { break }
        run.cancel()
        let status = try await run.value.status  // returns once the child is reaped
        #expect(status.code == 0)
        #expect((try? String(contentsOfFile: doneFile, encoding: .utf8)) == "graceful\n")
    }

    @Test func ptyChildSeesATerminalOfTheRequestedSize() async throws {
        let (out, status) = try await ChildProcess.run(spec("test -t 0 && stty size", terminal: (rows: 50, columns: 500))) { child in
            var all = ""
            do {
                for try await chunk in child.output { all += String(buffer: chunk) }
            } catch {}  // EIO once the child side closes
            return all
        }
        #expect(out.contains("50 500"))
        #expect(status.code == 0)
    }

    func isZombie(_ pid: Int32) -> Bool {
        ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "").contains(") Z ")
    }
}

/// The reaper's ordering guarantees: a pid is tracked from fork to reap whatever happens first.
@Suite struct ChildReapingTests {
    func sh(_ script: String) -> ChildSpec {
        ChildSpec(arguments: ["/bin/sh", "-c", script], environment: ["PATH": "/usr/bin:/bin"], workingDirectory: "/tmp", stopGrace: .seconds(5))
    }

    /// Our child that is still a zombie (exited, not reaped), by its /proc entry.
    func isUnreapedChild(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.range(of: ") ", options: .backwards)
        else { return false }
        let fields = stat[close.upperBound...].split(separator: " ")
        return fields.count > 1 && fields[0] == "Z" && Int32(fields[1]) == getpid()
    }

    func gone(_ pid: Int32) async throws -> Bool {
        for _ in 0..<250 {
            if kill(pid, 0) != 0 { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test func childThatExitsAtOnceIsCollected() async throws {
        for i in 0..<50 {
            // The body only waits: the exit may well be seen before `run` is back from the fork.
            let (_, status) = try await ChildProcess.run(sh("exit \(i)")) { child in _ = await child.exitStatus() }
            #expect(status.code == Int32(i))
        }
    }

    @Test func manyConcurrentShortChildrenEachGetTheirOwnStatus() async throws {
        let codes = try await withThrowingTaskGroup(of: (Int, Int32).self) { group in
            for i in 0..<200 {
                group.addTask {
                    let (_, status) = try await ChildProcess.run(self.sh("exit \(i % 256)")) { child in _ = await child.exitStatus() }
                    return (i, status.code)
                }
            }
            var all: [Int: Int32] = [:]
            for try await (i, code) in group { all[i] = code }
            return all
        }
        #expect(codes.count == 200)
        #expect(codes.allSatisfy { $0.value == Int32($0.key % 256) })
    }

    @Test func execFailureIsReportedAndReaped() async throws {
        let notExecutable = "/tmp/lab-noexec-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: notExecutable, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o644])
        defer { try? FileManager.default.removeItem(atPath: notExecutable) }
        for (path, expected) in [("/nonexistent/x", ENOENT), (notExecutable, EACCES)] {
            for _ in 0..<20 {
                do {
                    _ = try await ChildProcess.run(ChildSpec(arguments: [path], environment: [:], workingDirectory: "/")) { _ in }
                    Issue.record("\(path) started")
                } catch let error as SpawnError {
                    #expect(error.errno == expected)
                    let pid = try #require(error.pid)
                    #expect(!isUnreapedChild(pid), "failed exec \(pid) left a zombie")
                }
            }
        }
    }

    @Test func stopAfterExitSendsNoSignal() async throws {
        let (late, status) = try await ChildProcess.run(sh("exit 3")) { child in
            let status = await child.exitStatus()
            #expect(status.code == 3)
            #expect(child.hasExited)
            return child.signalGroup(SIGTERM)
        }
        #expect(late == false, "a reaped leader's group id must not be signalled")
        #expect(status.code == 3)
    }

    @Test func leaderExitKillsTheRestOfItsGroup() async throws {
        let (grandchild, status) = try await ChildProcess.run(sh("sleep 300 & echo $!; exit 0")) { child in
            var text = ""
            for try await chunk in child.output {
                text += String(buffer: chunk)
                if text.contains("\n") { break }
            }
            _ = await child.exitStatus()
            let pid = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
            // Still inside the body: the kill came from the reaper at the leader's exit, not from stop.
            #expect(try await gone(pid) || isZombieOfInit(pid))
            return pid
        }
        #expect(status.code == 0)
        #expect(grandchild > 0)
    }

    @Test func orphansReParentedToUsAreReaped() async throws {
        // A subreaper (like PID 1 in a container without an init) inherits orphaned grandchildren.
        #expect(ChildProcess.adoptOrphans())
        let (orphan, _) = try await ChildProcess.run(sh("setsid sh -c 'sleep 0.3' </dev/null >/dev/null 2>&1 & echo $!; exit 0")) { child in
            var text = ""
            for try await chunk in child.output { text += String(buffer: chunk) }
            return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        #expect(orphan > 0)
        #expect(try await gone(orphan), "orphan \(orphan) was not reaped")
    }

    func isZombieOfInit(_ pid: Int32) -> Bool {
        ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "").contains(") Z ")
    }
}
