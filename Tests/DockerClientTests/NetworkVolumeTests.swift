import DockerClient
import Foundation
import Testing

/// Networks (user-defined bridges, as the controller's `LAB_NETWORK`) and named volumes.
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct NetworkVolumeTests {
    @Test func createInspectConnectAndRemoveNetworks() async throws {
        let docker = try await TestEngine.clientWithImage()
        let netA = TestEngine.name("net-a")
        let netB = TestEngine.name("net-b")
        let a = try await docker.createNetwork(NetworkSpec(name: netA, driver: "bridge", labels: TestEngine.labels()))
        let b = try await docker.createNetwork(NetworkSpec(name: netB, internal: true, labels: TestEngine.labels()))
        do {
            await #expect { _ = try await docker.createNetwork(NetworkSpec(name: netA)) } throws: {
                ($0 as? DockerError)?.isConflict == true
            }
            let inspected = try await docker.inspectNetwork(netA)
            #expect(inspected.id == a.id)
            #expect(inspected.driver == "bridge")
            #expect(inspected.labels?["lab.test.run"] == TestEngine.runID)
            #expect(try await docker.inspectNetwork(netB).internal == true)
            let listed = try await docker.listNetworks(filters: .label("lab.test.run", TestEngine.runID))
            #expect(Set(listed.map(\.name)).isSuperset(of: [netA, netB]))

            try await withCleanup(docker) { cleanup in
                let spec = ContainerSpec(
                    image: TestEngine.image, cmd: ["sleep", "300"],
                    hostConfig: HostConfig(networkMode: netA, initProcess: true),
                    networkingConfig: NetworkingConfig(endpointsConfig: [netA: EndpointConfig(aliases: ["worker-a"])]))
                let id = try await docker.createContainer(spec, name: TestEngine.name("netc")).id
                cleanup.append(id)
                try await docker.connectNetwork(netB, container: id, aliases: ["worker-b"])
                try await docker.startContainer(id)

                let container = try await docker.inspectContainer(id)
                let networks = container.networkSettings?.networks ?? [:]
                #expect(Set(networks.keys) == [netA, netB])
                #expect(networks[netA]?.aliases?.contains("worker-a") == true)
                #expect(networks[netB]?.aliases?.contains("worker-b") == true)
                let addressOnA = networks[netA]?.ipAddress ?? ""
                #expect(!addressOnA.isEmpty)
                #expect(try await docker.inspectNetwork(netB).containers?[id] != nil)

                try await docker.disconnectNetwork(netB, container: id)
                #expect(try await docker.inspectContainer(id).networkSettings?.networks?[netB] == nil)
                // A network in use cannot be removed.
                await #expect { try await docker.removeNetwork(netA) } throws: { ($0 as? DockerError)?.code == .api }
            }
        } catch {
            try? await docker.removeNetwork(a.id)
            try? await docker.removeNetwork(b.id)
            throw error
        }
        try await docker.removeNetwork(a.id)
        try await docker.removeNetwork(b.id)
        await #expect { _ = try await docker.inspectNetwork(netA) } throws: { ($0 as? DockerError)?.isNotFound == true }
    }

    @Test func volumesAreSharedAndProtectedWhileInUse() async throws {
        let docker = try await TestEngine.clientWithImage()
        let name = TestEngine.name("vol")
        let volume = try await docker.createVolume(VolumeSpec(name: name, labels: TestEngine.labels(["lab.user": "bob"])))
        #expect(volume.name == name)
        #expect(volume.driver == "local")
        #expect(try await docker.inspectVolume(name).labels?["lab.user"] == "bob")
        #expect(try await docker.listVolumes(filters: .label("lab.test.run", TestEngine.runID)).contains { $0.name == name })

        try await withCleanup(docker) { cleanup in
            let writer = try await docker.createContainer(
                ContainerSpec(
                    image: TestEngine.image, cmd: ["sh", "-c", "echo persisted > /data/f"],
                    hostConfig: HostConfig(mounts: [.volume(name, "/data")], networkMode: "host")),
                name: TestEngine.name("vol-w")
            ).id
            cleanup.append(writer)
            try await docker.startContainer(writer)
            #expect(try await docker.waitContainer(writer).statusCode == 0)

            let reader = try await docker.createContainer(
                ContainerSpec(
                    image: TestEngine.image, cmd: ["cat", "/data/f"],
                    hostConfig: HostConfig(mounts: [.volume(name, "/data", readOnly: true)], networkMode: "host")),
                name: TestEngine.name("vol-r")
            ).id
            cleanup.append(reader)
            try await docker.startContainer(reader)
            #expect(try await docker.waitContainer(reader).statusCode == 0)
            #expect(try await docker.collectLogs(reader).stdout == "persisted\n")
            #expect(try await docker.inspectContainer(reader).mounts?.first?.name == name)

            await #expect { try await docker.removeVolume(name) } throws: { ($0 as? DockerError)?.isConflict == true }
        }
        try await docker.removeVolume(name)
        await #expect { _ = try await docker.inspectVolume(name) } throws: { ($0 as? DockerError)?.isNotFound == true }
    }
}
