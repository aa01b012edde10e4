import DockerClient
import Foundation
import Testing

/// Many requests at once, long-lived calls, cancellation and timeouts.
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct ConcurrencyTests {
    /// 50 concurrent inspects complete while more long-lived `/wait` calls are parked than the cooperative
    /// pool has threads, and an unrelated Task keeps ticking: nothing blocks the pool.
    @Test func fiftyConcurrentInspectsWithLongPollsParked() async throws {
        let docker = try await TestEngine.clientWithImage()
        try await withCleanup(docker) { cleanup in
            let sleeper = try await docker.createContainer(
                ContainerSpec(image: TestEngine.image, cmd: ["sleep", "300"], hostConfig: HostConfig(networkMode: "host", initProcess: true)),
                name: TestEngine.name("sleeper")
            ).id
            cleanup.append(sleeper)
            try await docker.startContainer(sleeper)

            let cores = ProcessInfo.processInfo.activeProcessorCount
            let parked = (0..<(cores * 2 + 2)).map { _ in
                Task { try await docker.waitContainer(sleeper, condition: .notRunning) }
            }

            let ticks = TickCounter()
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(5))
                    ticks.tick()
                }
            }

            let clock = ContinuousClock()
            let started = clock.now
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 { group.addTask { try await docker.inspectContainer(sleeper).id } }
                var ids: [String] = []
                for try await id in group { ids.append(id) }
                return ids
            }
            let elapsed = clock.now - started
            #expect(ids.count == 50)
            #expect(ids.allSatisfy { $0 == sleeper })
            #expect(elapsed < .seconds(10))
            let ticksDuringInspects = ticks.value
            #expect(ticksDuringInspects > 0, "the ticker Task never ran while the inspects were in flight")

            // The parked waits are still pending and finish when the container stops.
            #expect(parked.allSatisfy { !$0.isCancelled })
            try await docker.killContainer(sleeper)
            for wait in parked { #expect(try await wait.value.statusCode == 137) }
            ticker.cancel()
        }
    }

    @Test func cancellingARequestAbortsIt() async throws {
        let docker = try await TestEngine.clientWithImage()
        try await withCleanup(docker) { cleanup in
            let id = try await docker.createContainer(
                ContainerSpec(image: TestEngine.image, cmd: ["sleep", "300"], hostConfig: HostConfig(networkMode: "host", initProcess: true)),
                name: TestEngine.name("cancel")
            ).id
            cleanup.append(id)
            try await docker.startContainer(id)
            let wait = Task { try await docker.waitContainer(id) }
            try await Task.sleep(for: .milliseconds(100))
            let clock = ContinuousClock()
            let start = clock.now
            wait.cancel()
            await #expect(throws: CancellationError.self) { _ = try await wait.value }
            #expect(clock.now - start < .seconds(1))
            #expect(try await docker.inspectContainer(id).state.running)  // only the request ended
        }
    }

    @Test func perRequestTimeoutIsDistinctFromAPIErrors() async throws {
        let docker = try await TestEngine.clientWithImage()
        try await withCleanup(docker) { cleanup in
            let id = try await docker.createContainer(
                ContainerSpec(image: TestEngine.image, cmd: ["sleep", "300"], hostConfig: HostConfig(networkMode: "host", initProcess: true)),
                name: TestEngine.name("timeout")
            ).id
            cleanup.append(id)
            try await docker.startContainer(id)
            do {
                _ = try await docker.waitContainer(id, timeout: .milliseconds(300))
                Issue.record("wait on a running container returned")
            } catch let error as DockerError {
                #expect(error.code == .timeout)
                #expect(error.status == nil)
            }
            // A client-wide default applies to ordinary calls too; a copy shares the connections.
            let quick = docker.withRequestTimeout(.seconds(5))
            #expect(try await quick.inspectContainer(id).state.running)
        }
    }
}

/// A counter shared between Tasks.
final class TickCounter: Sendable {
    private let count = Mutex(0)
    func tick() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

import Synchronization
