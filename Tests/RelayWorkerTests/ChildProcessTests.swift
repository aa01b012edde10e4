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
