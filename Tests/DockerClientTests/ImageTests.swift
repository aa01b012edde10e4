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
