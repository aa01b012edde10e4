@testable import DockerClient
import Foundation
import Testing

/// The `/events` stream.
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct EventsTests {
    @Test func observesCreateStartDieDestroy() async throws {
        let docker = try await TestEngine.clientWithImage()
        let marker = "events-\(UUID().uuidString.prefix(8))"
        let events = try await docker.events(filters: ["type": ["container"], "label": ["lab.events=\(marker)"]])

        // The subscription is live once `events` returned, so nothing below can be missed.
        let spec = ContainerSpec(
            image: TestEngine.image, cmd: ["sh", "-c", "exit 5"], labels: TestEngine.labels(["lab.events": marker]),
            hostConfig: HostConfig(networkMode: "host"))
        let id = try await docker.createContainer(spec, name: TestEngine.name(marker)).id
        try await docker.startContainer(id)
        _ = try await docker.waitContainer(id)
        try await docker.removeContainer(id)

        let expected = ["create", "start", "die", "destroy"]
        var seen: [DockerEvent] = []
        let collector = Task {
            var collected: [DockerEvent] = []
            for try await event in events {
                collected.append(event)
                if event.actionName == "destroy" { break }
            }
            return collected
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(20))
            collector.cancel()
        }
        seen = try await collector.value
        timeout.cancel()

        let actions = seen.map(\.actionName).filter { expected.contains($0) }
        #expect(actions == expected)
        #expect(seen.allSatisfy { $0.actor.id == id && $0.type == "container" })
        #expect(seen.first { $0.actionName == "die" }?.actor.attributes?["exitCode"] == "5")
        #expect(seen.first?.actor.attributes?["lab.events"] == marker)
    }

    @Test func cancellingTheConsumerEndsTheStreamAndTheSubscription() async throws {
        let docker = try TestEngine.client()  // its own client: its transfer count is ours alone
        try await docker.ping()
        #expect(docker.transport.activeTransfers == 0)

        let started = AsyncStream<Void>.makeStream()
        let consumer = Task {
            var count = 0
            let stream = try await docker.events(filters: ["type": ["container"], "label": ["lab.none=\(TestEngine.runID)"]])
            started.continuation.yield()
            for try await _ in stream { count += 1 }  // no event matches: blocks until cancelled
            return count
        }
        var waitStart = started.stream.makeAsyncIterator()
        _ = await waitStart.next()
        #expect(docker.transport.activeTransfers == 1)  // the subscription is a live transfer

        let clock = ContinuousClock()
        let start = clock.now
        consumer.cancel()
        let count = try await consumer.value  // ends cleanly: no error, just the end of the sequence
        #expect(count == 0)
        #expect(clock.now - start < .seconds(2))
        // The transfer was aborted (removed from curl, its connection closed), not left running.
        try await eventually("the events transfer to be aborted") { docker.transport.activeTransfers == 0 }
        // The engine still answers on the same client.
        try await docker.ping()
    }

    @Test func cancellationBeforeSubscribingThrowsCancellationError() async throws {
        let docker = try TestEngine.client()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await docker.events()
        }
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }
}
