import DockerClient
import Foundation
import Testing

/// The container life cycle against the real engine, with the options the controller uses.
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct ContainerLifecycleTests {
    @Test func fullLifeCycleWithLabelsAndHardening() async throws {
        let docker = try await TestEngine.clientWithImage()
        let workspace = FileManager.default.temporaryDirectory.appendingPathComponent("dct-ws-\(TestEngine.runID)").path
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        try "hello from the host\n".write(toFile: "\(workspace)/hello.txt", atomically: true, encoding: .utf8)

        let name = TestEngine.name("life")
        let labels = TestEngine.labels(["lab.user": "bob", "lab.spec-hash": "abc123"])
        let spec = ContainerSpec(
            image: TestEngine.image, cmd: ["sleep", "300"], env: ["HOME=/work", "LAB_X=1"], labels: labels,
            user: "65534:65534", workingDir: "/work",
            hostConfig: HostConfig(
                binds: ["\(workspace):/work:ro"], mounts: [.tmpfs("/scratch")], networkMode: "host",
                memory: 128 << 20, nanoCpus: 500_000_000, pidsLimit: 64, securityOpt: ["no-new-privileges"],
                capAdd: ["NET_BIND_SERVICE"], capDrop: ["ALL"], initProcess: true, readonlyRootfs: true,
                restartPolicy: .unlessStopped))

        try await withCleanup(docker) { cleanup in
            let created = try await docker.createContainer(spec, name: name)
            cleanup.append(created.id)

            // Everything we asked for is what the engine stored.
            let inspect = try await docker.inspectContainer(name)
            #expect(inspect.id == created.id)
            #expect(inspect.shortName == name)
            #expect(inspect.state.status == "created")
            #expect(inspect.config.labels?["lab.user"] == "bob")
            #expect(inspect.config.labels?["lab.spec-hash"] == "abc123")
            #expect(inspect.config.user == "65534:65534")
            #expect(inspect.config.workingDir == "/work")
            #expect(inspect.config.env?.contains("LAB_X=1") == true)
            #expect(inspect.config.cmd == ["sleep", "300"])
            #expect(inspect.config.image == TestEngine.image)
            let host = inspect.hostConfig
            #expect(host.capDrop == ["ALL"])
            #expect(host.capAdd == ["NET_BIND_SERVICE"])
            #expect(host.securityOpt == ["no-new-privileges"])
            #expect(host.readonlyRootfs == true)
            #expect(host.initProcess == true)
            #expect(host.memory == 128 << 20)
            #expect(host.nanoCpus == 500_000_000)
            #expect(host.pidsLimit == 64)
            #expect(host.networkMode == "host")
            #expect(host.restartPolicy?.name == "unless-stopped")
            #expect(host.binds == ["\(workspace):/work:ro"])
            #expect(host.mounts?.first?.type == "tmpfs")

            try await docker.startContainer(created.id)
            try await docker.startContainer(created.id)  // already running: 304, still success
            let running = try await docker.inspectContainer(created.id)
            #expect(running.state.running)
            #expect(running.state.pid ?? 0 > 0)
            #expect(running.mounts?.contains { $0.destination == "/work" && $0.rw == false } == true)

            // The hardening is in force inside the container.
            let id = try await docker.exec(created.id, command: ["sh", "-c", "id -u; cat /work/hello.txt; grep CapEff /proc/self/status"])
            #expect(id.exitCode == 0)
            #expect(id.stdoutText.hasPrefix("65534\nhello from the host\n"))
            #expect(id.stdoutText.contains("CapEff:\t0000000000000000"))  // nobody has no effective capabilities
            let write = try await docker.exec(created.id, command: ["sh", "-c", "touch /etc/x"], user: "0")
            #expect(write.exitCode != 0)
            #expect(write.stderrText.contains("Read-only file system"))
            let scratch = try await docker.exec(created.id, command: ["sh", "-c", "echo ok > /scratch/f && cat /scratch/f"], user: "0")
            #expect(scratch.stdoutText == "ok\n")

            // With init as PID 1, SIGTERM ends `sleep` at once, long before the 10 s grace period.
            let clock = ContinuousClock()
            let stopTime = try await clock.measure { try await docker.stopContainer(created.id, timeout: 10) }
            #expect(stopTime < .seconds(5))
            let stopped = try await docker.inspectContainer(created.id)
            #expect(stopped.state.status == "exited")
            #expect(!stopped.state.running)
            try await docker.stopContainer(created.id)  // already stopped: success

            try await docker.removeContainer(created.id)
            await #expect { _ = try await docker.inspectContainer(created.id) } throws: {
                ($0 as? DockerError)?.isNotFound == true
            }
        }
    }

    @Test func labelFilteredList() async throws {
        let docker = try await TestEngine.clientWithImage()
        let group = "list-\(UUID().uuidString.prefix(8))"
        try await withCleanup(docker) { cleanup in
            for (index, user) in ["ann", "ben", "cid"].enumerated() {
                let spec = ContainerSpec(
                    image: TestEngine.image, cmd: ["true"],
                    labels: TestEngine.labels(["lab.group": index < 2 ? group : "other", "lab.user": user]))
                cleanup.append(try await docker.createContainer(spec, name: TestEngine.name("\(group)-\(user)")).id)
            }
            let mine = try await docker.listContainers(all: true, filters: .label("lab.group", group))
            #expect(Set(mine.compactMap { $0.labels?["lab.user"] }) == ["ann", "ben"])
            #expect(mine.allSatisfy { $0.state == "created" })
            #expect(Set(mine.map(\.id)) == Set(cleanup.prefix(2)))
            // Two label filters are ANDed.
            let one = try await docker.listContainers(
                all: true, filters: DockerFilters.label("lab.group", group).adding("label", "lab.user=ben"))
            #expect(one.map(\.id) == [cleanup[1]])
            // Without `all`, created-but-not-started containers are not listed.
            #expect(try await docker.listContainers(filters: .label("lab.group", group)).isEmpty)
        }
    }

    @Test func conflictAndNotFoundAreTypedErrors() async throws {
        let docker = try await TestEngine.clientWithImage()
        let name = TestEngine.name("conflict")
        try await withCleanup(docker) { cleanup in
            cleanup.append(try await docker.createContainer(ContainerSpec(image: TestEngine.image, cmd: ["sleep", "60"]), name: name).id)
            do {
                _ = try await docker.createContainer(ContainerSpec(image: TestEngine.image, cmd: ["true"]), name: name)
                Issue.record("second create with the same name succeeded")
            } catch let error as DockerError {
                #expect(error.code == .api)
                #expect(error.status == 409)
                #expect(error.isConflict)
                #expect(error.message.contains("is already in use"))
            }
            // Removing a running container without force: 409 too.
            try await docker.startContainer(name)
            await #expect { try await docker.removeContainer(name) } throws: { ($0 as? DockerError)?.status == 409 }

            do {
                _ = try await docker.inspectContainer(TestEngine.name("does-not-exist"))
                Issue.record("inspect of a missing container succeeded")
            } catch let error as DockerError {
                #expect(error.isNotFound)
                #expect(error.status == 404)
                #expect(error.message.contains("No such container"))
            }
            await #expect { try await docker.startContainer("dct-missing-\(TestEngine.runID)") } throws: {
                ($0 as? DockerError)?.isNotFound == true
            }
            await #expect {
                _ = try await docker.createContainer(ContainerSpec(image: "dct-no-such-image:\(TestEngine.runID)"))
            } throws: { ($0 as? DockerError)?.isNotFound == true }
        }
    }

    @Test func logsAreDemultiplexed() async throws {
        let docker = try await TestEngine.clientWithImage()
        try await withCleanup(docker) { cleanup in
            let spec = ContainerSpec(
                image: TestEngine.image, cmd: ["sh", "-c", "echo out; echo err >&2; echo out2; printf 'err2' >&2; exit 3"],
                hostConfig: HostConfig(networkMode: "host"))
            let id = try await docker.createContainer(spec, name: TestEngine.name("logs")).id
            cleanup.append(id)
            let wait = try await docker.registerWait(id, condition: .nextExit)  // registered before start
            try await docker.startContainer(id)
            let exit = try await wait.result()
            #expect(exit.statusCode == 3)

            var chunks: [LogChunk] = []
            for try await chunk in try await docker.logs(id) { chunks.append(chunk) }
            let stdout = chunks.filter { $0.source == .stdout }.map(\.text).joined()
            let stderr = chunks.filter { $0.source == .stderr }.map(\.text).joined()
            #expect(stdout == "out\nout2\n")
            #expect(stderr == "err\nerr2")
            let collected = try await docker.collectLogs(id, options: LogsOptions(tail: 1))
            #expect(collected.stdout + collected.stderr == "err2")
        }
    }

    @Test func followedLogsStreamWhileRunning() async throws {
        let docker = try await TestEngine.clientWithImage()
        try await withCleanup(docker) { cleanup in
            // Prints a line, then waits for a file that the test creates after seeing that line.
            let spec = ContainerSpec(
                image: TestEngine.image,
                cmd: ["sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second >&2"],
                hostConfig: HostConfig(networkMode: "host", initProcess: true))
            let id = try await docker.createContainer(spec, name: TestEngine.name("follow")).id
            cleanup.append(id)
            try await docker.startContainer(id)
            var iterator = try await docker.logs(id, options: LogsOptions(follow: true)).makeAsyncIterator()
            let first = try await iterator.next()
            #expect(first == LogChunk(source: .stdout, bytes: Array("first\n".utf8)))
            #expect(try await docker.exec(id, command: ["touch", "/tmp/go"]).exitCode == 0)
            let second = try await iterator.next()
            #expect(second == LogChunk(source: .stderr, bytes: Array("second\n".utf8)))
            #expect(try await iterator.next() == nil)  // the container exited; the engine ends the stream
        }
    }

    @Test func killWaitAndExecStreams() async throws {
        let docker = try await TestEngine.clientWithImage()
        try await withCleanup(docker) { cleanup in
            let id = try await docker.createContainer(
                ContainerSpec(image: TestEngine.image, cmd: ["sleep", "300"], hostConfig: HostConfig(networkMode: "host")),
                name: TestEngine.name("kill")
            ).id
            cleanup.append(id)
            try await docker.startContainer(id)

            let execID = try await docker.createExec(id, ExecSpec(cmd: ["sh", "-c", "echo a; echo b >&2; exit 7"]))
            var output: [LogChunk] = []
            for try await chunk in try await docker.startExec(execID) { output.append(chunk) }
            #expect(output.contains(LogChunk(source: .stdout, bytes: Array("a\n".utf8))))
            #expect(output.contains(LogChunk(source: .stderr, bytes: Array("b\n".utf8))))
            try await eventually("exec exit code") { try await docker.inspectExec(execID).exitCode == 7 }

            async let exit = docker.waitContainer(id)
            try await docker.killContainer(id, signal: "SIGKILL")
            #expect(try await exit.statusCode == 137)
            // Killing a stopped container is a conflict.
            await #expect { try await docker.killContainer(id) } throws: { ($0 as? DockerError)?.status == 409 }
        }
    }
}
