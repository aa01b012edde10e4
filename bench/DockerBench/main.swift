// DockerBench: DockerClient vs docker-py 7.1 against the same engine, in one run.
//
// Measures calls/s for container inspect and list (sequential, and with N concurrent callers) and the time
// of a create → start → stop → remove cycle. The docker-py side is bench/docker_py_bench.py, run as a child
// process with the same container, label filter and image. Usually started by bench/docker.sh, which brings
// up a private engine inside `unshare -n`.
import ArgumentParser
import DockerClient
import Foundation

@main
struct DockerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare DockerClient with docker-py 7.1 on inspect, list and a container cycle.")

    @Option(help: "Engine address (default: $DOCKER_HOST, else the local socket).")
    var host: String?
    @Option(help: "Image with `sleep` (no registry needed).")
    var image = "lab-base:bookworm"
    @Option(help: "Inspect calls per measurement.")
    var inspect = 2000
    @Option(help: "List calls per measurement.")
    var list = 1000
    @Option(help: "Create→start→stop→remove cycles per client, run in alternating blocks of 5 so drift in the engine hits both alike.")
    var cycles = 20
    @Option(help: "Concurrent callers for the concurrent measurements (Tasks here, threads in Python).")
    var concurrency = 8
    @Option(help: "Containers carrying the list filter's label; each list call returns all of them. The engine's own time grows with this (~0.1 ms per container), which caps any client's speed-up.")
    var listed = 5
    @Option(help: "Rounds of the call measurements (alternating clients); each client's best round counts.")
    var rounds = 3
    @Option(help: "Python interpreter with docker==7.1.0.")
    var python = "python3"
    @Option(help: "Path of docker_py_bench.py (default: next to this package's bench/ folder).")
    var pyScript: String?
    @Flag(help: "Skip the docker-py side.")
    var skipPython = false
    @Flag(help: "Exit with status 1 if a target is missed (≥2× on inspect/list, cycle no slower).")
    var strict = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var env = environment
        if let host { env["DOCKER_HOST"] = host }
        let docker = try DockerClient.fromEnvironment(env)
        let hostString = env["DOCKER_HOST"] ?? "unix:///var/run/docker.sock"
        let version = try await docker.version()
        log("engine \(version.version), API \(try await docker.apiVersion()) at \(hostString)")

        let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let label = "lab.bench=\(run)"
        var created: [String] = []
        for i in 0..<max(listed, 1) {
            let spec = ContainerSpec(image: image, cmd: ["sleep", "300"], labels: ["lab.bench": run, "lab.bench.i": "\(i)"])
            created.append(try await docker.createContainer(spec, name: "bench-\(run)-\(i)").id)
        }
        let target = created[0]

        do {
            // Calls: alternate the two clients for `rounds` rounds and keep each one's best rate, so a burst
            // of load from elsewhere on the machine does not decide the comparison.
            var ours = try await measureSwiftCalls(docker, target: target, run: run)
            var theirs: Measurements? = nil
            for round in 0..<rounds {
                if round > 0 { ours = ours.best(try await measureSwiftCalls(docker, target: target, run: run)) }
                if !skipPython {
                    let python = try runPython(["--only", "calls"], host: hostString, target: target, label: label, env: env)
                    theirs = theirs.map { $0.best(python) } ?? python
                }
            }
            // Cycles: one warm-up each, then alternating blocks.
            _ = try await swiftCycles(docker, count: 1, run: run)
            if !skipPython {
                _ = try runPython(["--only", "cycles", "--cycles", "1"], host: hostString, target: target, label: label, env: env)
            }
            var swiftDurations: [Double] = []
            var pythonDurations: [Double] = []
            let block = 5
            var done = 0
            while done < cycles {
                let n = min(block, cycles - done)
                log("cycles \(done + 1)–\(done + n)")
                swiftDurations += try await swiftCycles(docker, count: n, run: run)
                if !skipPython {
                    let python = try runPython(
                        ["--only", "cycles", "--cycles", "\(n)"], host: hostString, target: target, label: label, env: env)
                    pythonDurations += python.cycleDurationsMs ?? []
                }
                done += n
            }
            ours.cycleDurationsMs = swiftDurations
            theirs?.cycleDurationsMs = pythonDurations
            report(ours: ours, theirs: theirs)
            try await cleanUp(docker, run: run)
            if strict, let theirs, !targetsMet(ours: ours, theirs: theirs) { throw ExitCode(1) }
        } catch {
            try? await cleanUp(docker, run: run)
            throw error
        }
    }

    struct Measurements: Codable {
        var client: String
        var inspectSequential: Double?
        var inspectConcurrent: Double?
        var listSequential: Double?
        var listConcurrent: Double?
        var cycleDurationsMs: [Double]?

        /// The better rate of each metric.
        func best(_ other: Measurements) -> Measurements {
            func top(_ a: Double?, _ b: Double?) -> Double? { max(a ?? 0, b ?? 0) }
            var result = self
            result.inspectSequential = top(inspectSequential, other.inspectSequential)
            result.inspectConcurrent = top(inspectConcurrent, other.inspectConcurrent)
            result.listSequential = top(listSequential, other.listSequential)
            result.listConcurrent = top(listConcurrent, other.listConcurrent)
            return result
        }

        var cycleMeanMs: Double { cycleDurationsMs.map { $0.reduce(0, +) / Double(max($0.count, 1)) } ?? 0 }
        var cycleMedianMs: Double { median(cycleDurationsMs ?? []) }
    }

    func measureSwiftCalls(_ docker: DockerClient, target: String, run: String) async throws -> Measurements {
        let filters = DockerFilters.label("lab.bench", run)
        let expected = max(listed, 1)
        for _ in 0..<50 {  // warm-up: connections, negotiation
            _ = try await docker.inspectContainer(target)
            _ = try await docker.listContainers(all: true, filters: filters)
        }
        log("DockerClient: inspect")
        let inspectSequential = try await sequential(inspect) { _ = try await docker.inspectContainer(target) }
        let inspectConcurrent = try await concurrent(inspect) { _ = try await docker.inspectContainer(target) }
        log("DockerClient: list")
        let listSequential = try await sequential(list) {
            let listed = try await docker.listContainers(all: true, filters: filters)
            precondition(listed.count == expected, "list returned \(listed.count) containers, expected \(expected)")
        }
        let listConcurrent = try await concurrent(list) { _ = try await docker.listContainers(all: true, filters: filters) }
        return Measurements(
            client: "DockerClient", inspectSequential: inspectSequential, inspectConcurrent: inspectConcurrent,
            listSequential: listSequential, listConcurrent: listConcurrent)
    }

    /// `count` create→start→stop→remove cycles; durations in ms.
    func swiftCycles(_ docker: DockerClient, count: Int, run: String) async throws -> [Double] {
        let clock = ContinuousClock()
        var durations: [Double] = []
        for _ in 0..<count {
            let elapsed = try await clock.measure {
                let spec = ContainerSpec(
                    image: image, cmd: ["sleep", "300"], labels: ["lab.bench": run, "lab.bench.cycle": "swift"],
                    hostConfig: HostConfig(networkMode: "host", initProcess: true))
                let id = try await docker.createContainer(spec).id
                try await docker.startContainer(id)
                try await docker.stopContainer(id, timeout: 10)
                try await docker.removeContainer(id)
            }
            durations.append(seconds(elapsed) * 1000)
        }
        return durations
    }

    func sequential(_ n: Int, _ call: @escaping @Sendable () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let elapsed = try await clock.measure { for _ in 0..<n { try await call() } }
        return Double(n) / seconds(elapsed)
    }

    func concurrent(_ n: Int, _ call: @escaping @Sendable () async throws -> Void) async throws -> Double {
        let workers = concurrency
        let perWorker = n / workers
        let clock = ContinuousClock()
        let elapsed = try await clock.measure {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<workers { group.addTask { for _ in 0..<perWorker { try await call() } } }
                try await group.waitForAll()
            }
        }
        return Double(perWorker * workers) / seconds(elapsed)
    }

    func runPython(_ extra: [String], host: String, target: String, label: String, env: [String: String]) throws
        -> Measurements
    {
        let script = pyScript ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("docker_py_bench.py").path
        log("docker-py \(extra.joined(separator: " ")): \(python) \(script)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            python, script, "--host", host, "--container", target, "--label", label, "--image", image,
            "--inspect", "\(inspect)", "--list", "\(list)", "--concurrency", "\(concurrency)",
        ] + extra
        process.environment = env
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last
        else { throw ValidationError("docker-py bench failed (status \(process.terminationStatus))") }
        return try JSONDecoder().decode(Measurements.self, from: Data(line.utf8))
    }

    func report(ours: Measurements, theirs: Measurements?) {
        func row(_ name: String, _ a: Double?, _ b: Double?, higherIsBetter: Bool, unit: String) -> String {
            let a = a ?? 0
            let ratio = b.map { higherIsBetter ? a / $0 : $0 / a }
            return name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + fmt(a, unit).leftPad(16) + (b.map { fmt($0, unit) } ?? "-").leftPad(16)
                + (ratio.map { String(format: "%.2f×", $0) } ?? "-").leftPad(10)
        }
        var lines = [
            "DockerBench: \(inspect) inspects, \(list) lists (\(max(listed, 1)) containers match) × \(rounds) rounds "
                + "(best counts), \(cycles) cycles each, \(concurrency) concurrent callers",
            "metric".padding(toLength: 34, withPad: " ", startingAt: 0) + "DockerClient".leftPad(16)
                + (theirs?.client ?? "docker-py").leftPad(16) + "speed-up".leftPad(10),
        ]
        lines.append(row("inspect calls/s (sequential)", ours.inspectSequential, theirs?.inspectSequential, higherIsBetter: true, unit: "/s"))
        lines.append(row("inspect calls/s (\(concurrency) concurrent)", ours.inspectConcurrent, theirs?.inspectConcurrent, higherIsBetter: true, unit: "/s"))
        lines.append(row("list calls/s (sequential)", ours.listSequential, theirs?.listSequential, higherIsBetter: true, unit: "/s"))
        lines.append(row("list calls/s (\(concurrency) concurrent)", ours.listConcurrent, theirs?.listConcurrent, higherIsBetter: true, unit: "/s"))
        lines.append(row("create→start→stop→remove (mean)", ours.cycleMeanMs, theirs?.cycleMeanMs, higherIsBetter: false, unit: "ms"))
        lines.append(row("create→start→stop→remove (median)", ours.cycleMedianMs, theirs?.cycleMedianMs, higherIsBetter: false, unit: "ms"))
        if let theirs {
            lines.append("targets (≥2× inspect/list calls/s, cycle no slower): \(targetsMet(ours: ours, theirs: theirs) ? "met" : "MISSED")")
        }
        print(lines.joined(separator: "\n"))
    }

    func targetsMet(ours: Measurements, theirs: Measurements) -> Bool {
        func twice(_ a: Double?, _ b: Double?) -> Bool { (a ?? 0) >= 2 * (b ?? .infinity) }
        return twice(ours.inspectSequential, theirs.inspectSequential) && twice(ours.inspectConcurrent, theirs.inspectConcurrent)
            && twice(ours.listSequential, theirs.listSequential) && twice(ours.listConcurrent, theirs.listConcurrent)
            && ours.cycleMedianMs <= theirs.cycleMedianMs * 1.05  // within noise
    }

    func cleanUp(_ docker: DockerClient, run: String) async throws {
        for container in try await docker.listContainers(all: true, filters: .label("lab.bench", run)) {
            try await docker.removeContainer(container.id, force: true)
        }
    }

    func log(_ text: String) { FileHandle.standardError.write(Data("docker-bench: \(text)\n".utf8)) }
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    func fmt(_ value: Double, _ unit: String) -> String { String(format: unit == "ms" ? "%.1f ms" : "%.0f/s", value) }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
