import DockerClient
import Foundation
import Testing

/// Images without a registry: inspect/list, import from a tar, build from a context, save/load, pull errors.
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct ImageTests {
    @Test func inspectAndListBaseImage() async throws {
        let docker = try await TestEngine.clientWithImage()
        let image = try await docker.inspectImage(TestEngine.image)
        #expect(image.id.hasPrefix("sha256:"))
        #expect(image.repoTags?.contains(TestEngine.image) == true)
        #expect(image.os == "linux")
        let listed = try await docker.listImages(filters: ["reference": [TestEngine.image]])
        #expect(listed.map(\.id) == [image.id])
        await #expect { _ = try await docker.inspectImage("dct-missing:\(TestEngine.runID)") } throws: {
            ($0 as? DockerError)?.isNotFound == true
        }
    }

    @Test func importSaveAndLoadRoundTrip() async throws {
        let docker = try TestEngine.client()
        var rootfs = TarArchive()
        rootfs.addDirectory("etc")
        rootfs.addFile("etc/lab-marker", text: "imported \(TestEngine.runID)\n")
        let repository = "dct-import-\(TestEngine.runID)"
        let messages = try await docker.importImage(.bytes(rootfs.bytes), repository: repository, tag: "v1").waitUntilDone()
        let imported = try #require(messages.last?.status)
        #expect(imported.hasPrefix("sha256:"))
        let image = try await docker.inspectImage("\(repository):v1")
        #expect(image.id == imported)

        // Save to a file, remove, load it back.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dct-save-\(TestEngine.runID).tar").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await docker.saveImages(["\(repository):v1"], toFile: path)
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0) > 1024)
        try await docker.removeImage("\(repository):v1")
        await #expect { _ = try await docker.inspectImage("\(repository):v1") } throws: { ($0 as? DockerError)?.isNotFound == true }
        let loaded = try await docker.loadImages(.file(path: path)).waitUntilDone()
        #expect(loaded.contains { ($0.stream ?? "").contains("Loaded image") })
        #expect(try await docker.inspectImage("\(repository):v1").id == imported)
        try await docker.tagImage("\(repository):v1", repository: repository, tag: "v2")
        #expect(try await docker.inspectImage("\(repository):v2").id == imported)
        try await docker.removeImage("\(repository):v2")
        try await docker.removeImage("\(repository):v1")
    }

    @Test func buildFromContextAndRun() async throws {
        let docker = try await TestEngine.clientWithImage()
        var context = TarArchive()
        context.addFile(
            "Dockerfile",
            text: """
                FROM \(TestEngine.image)
                LABEL lab.built=yes
                COPY greeting.txt /greeting.txt
                RUN cat /greeting.txt > /built.txt && echo built >> /built.txt
                CMD ["cat", "/built.txt"]
                """)
        context.addFile("greeting.txt", text: "hello \(TestEngine.runID)\n")
        let tag = "dct-build-\(TestEngine.runID):latest"
        let messages = try await docker.buildImage(
            context: .bytes(context.bytes), tag: tag, options: BuildOptions(networkMode: "host", noCache: true)
        ).waitUntilDone()
        let builtID = messages.compactMap { $0.aux?.id }.last
        #expect(builtID != nil)
        #expect(messages.contains { ($0.stream ?? "").contains("Successfully tagged \(tag)") })
        let image = try await docker.inspectImage(tag)
        #expect(image.id == builtID)
        #expect(image.config?.labels?["lab.built"] == "yes")

        try await withCleanup(docker) { cleanup in
            let id = try await docker.createContainer(
                ContainerSpec(image: tag, hostConfig: HostConfig(networkMode: "host")), name: TestEngine.name("built")
            ).id
            cleanup.append(id)
            try await docker.startContainer(id)
            #expect(try await docker.waitContainer(id).statusCode == 0)
            #expect(try await docker.collectLogs(id).stdout == "hello \(TestEngine.runID)\nbuilt\n")
        }
        try await docker.removeImage(tag, force: true)
    }

    @Test func failingBuildStepThrowsOperationFailed() async throws {
        let docker = try await TestEngine.clientWithImage()
        var context = TarArchive()
        context.addFile("Dockerfile", text: "FROM \(TestEngine.image)\nRUN echo failing; exit 9\n")
        let stream = try await docker.buildImage(context: .bytes(context.bytes), options: BuildOptions(networkMode: "host"))
        await #expect {
            _ = try await stream.waitUntilDone()
        } throws: { error in
            guard let error = error as? DockerError else { return false }
            return error.code == .operationFailed && error.message.contains("non-zero code: 9")
        }
    }

    @Test func pullFromAnUnreachableRegistryIsATypedError() async throws {
        let docker = try TestEngine.client()
        // A registry on a closed loopback port: no traffic leaves the machine.
        do {
            for try await _ in try await docker.pullImage("127.0.0.1:1/dct/none", tag: "latest") {}
            Issue.record("pull from a closed port succeeded")
        } catch let error as DockerError {
            #expect(error.code == .api || error.code == .operationFailed)
            #expect(error.message.contains("127.0.0.1:1"))
        }
    }
}

/// Push and pull with streamed progress against a real registry (Debian's `docker-registry`) on loopback.
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct RegistryTests {
    static let registryBinary = "/usr/bin/docker-registry"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: registryBinary), "apt-get install docker-registry"))
    func pushThenPullWithProgress() async throws {
        let docker = try TestEngine.client()
        let registry = try await LocalRegistry.start(binary: Self.registryBinary)
        defer { registry.stop() }

        // A fresh image whose layer the engine must really download again after it is removed locally.
        var rootfs = TarArchive()
        rootfs.addDirectory("etc")
        rootfs.addFile("etc/lab-marker", text: "pushed \(TestEngine.runID) \(UUID().uuidString)\n")
        rootfs.addFile("payload.bin", contents: (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
        let repository = "127.0.0.1:\(registry.port)/dct/pushed-\(TestEngine.runID)"
        let imported = try await docker.importImage(.bytes(rootfs.bytes), repository: repository, tag: "v1").waitUntilDone()
        let imageID = try #require(imported.last?.status)

        let pushed = try await docker.pushImage(repository, tag: "v1").waitUntilDone()
        #expect(pushed.contains { $0.status == "Pushed" })
        #expect(pushed.contains { ($0.status ?? "").contains("digest: sha256:") })

        try await docker.removeImage("\(repository):v1")
        await #expect { _ = try await docker.inspectImage("\(repository):v1") } throws: { ($0 as? DockerError)?.isNotFound == true }

        var statuses: [String] = []
        var sawByteProgress = false
        for try await message in try await docker.pullImage(repository, tag: "v1") {
            statuses.append(message.status ?? "")
            if let detail = message.progressDetail, let total = detail.total, total > 0, detail.current ?? 0 > 0 {
                sawByteProgress = true
            }
        }
        #expect(statuses.contains("Pull complete"))
        #expect(statuses.contains { $0.hasPrefix("Status: Downloaded newer image for \(repository):v1") })
        #expect(sawByteProgress, "no progressDetail with current/total bytes in \(statuses)")
        #expect(try await docker.inspectImage("\(repository):v1").id == imageID)
        try await docker.removeImage("\(repository):v1")

        // A tag the registry does not have: the engine reports it (before or inside the stream) as a typed error.
        await #expect {
            for try await _ in try await docker.pullImage(repository, tag: "missing") {}
        } throws: { error in
            guard let error = error as? DockerError else { return false }
            return (error.code == .api && error.status == 404) || error.code == .operationFailed
        }
    }
}

/// `docker-registry serve` on a free loopback port with storage in a temporary directory.
final class LocalRegistry: Sendable {
    let port: Int
    let directory: String
    private let process: Process

    private init(port: Int, directory: String, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    static func start(binary: String) async throws -> LocalRegistry {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dct-registry-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(directory)/data", withIntermediateDirectories: true)
        let port = try freeLoopbackPort()
        let config = """
            version: 0.1
            log: {level: warn}
            storage: {filesystem: {rootdirectory: \(directory)/data}, delete: {enabled: true}}
            http: {addr: "127.0.0.1:\(port)"}
            """
        try config.write(toFile: "\(directory)/config.yml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "\(directory)/config.yml"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let registry = LocalRegistry(port: port, directory: directory, process: process)
        // Ready when it accepts connections (bounded).
        let deadline = ContinuousClock.now + .seconds(20)
        while !canConnect(port: port) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                registry.stop()
                throw TestEngine.Missing(description: "docker-registry did not start on 127.0.0.1:\(port)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return registry
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestEngine.Missing(description: "cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
