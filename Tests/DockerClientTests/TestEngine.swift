import DockerClient
import Foundation
import Testing

/// The real dockerd the integration tests talk to.
///
/// `LAB_TEST_DOCKER_HOST` (e.g. `unix:///tmp/lab-dockerd/docker.sock`) names it; `scripts/dockerd.sh start`
/// prints a matching `DOCKER_HOST`. Without it the integration tests are skipped — unless
/// `LAB_REQUIRE_DOCKER=1`, in which case they run and fail with a message saying what is missing.
enum TestEngine {
    static let environment = ProcessInfo.processInfo.environment
    static let host = environment["LAB_TEST_DOCKER_HOST"].flatMap { $0.isEmpty ? nil : $0 }
    static let required = environment["LAB_REQUIRE_DOCKER"] == "1"
    /// Run the integration tests: an engine is configured, or one is required (then they fail loudly).
    static let enabled = host != nil || required
    /// Image with `/bin/sh` made by `scripts/base-image.sh import` (no registry here).
    static let image = environment["LAB_TEST_IMAGE"] ?? "lab-base:bookworm"
    /// Distinguishes this run's containers, networks and volumes from anything else on the engine.
    static let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// A client for the test engine; fails clearly when none is configured.
    static func client() throws -> DockerClient {
        guard let host else {
            throw Missing(
                description:
                    "LAB_REQUIRE_DOCKER=1 but LAB_TEST_DOCKER_HOST is not set: start a private engine with "
                    + "`scripts/dockerd.sh start <dir>` inside `unshare -n` and export LAB_TEST_DOCKER_HOST=$DOCKER_HOST")
        }
        return DockerClient(configuration: try DockerClient.Configuration(host: host))
    }

    /// A client plus a check that the base image exists (with instructions if not).
    static func clientWithImage() async throws -> DockerClient {
        let docker = try client()
        do {
            _ = try await docker.inspectImage(image)
        } catch let error as DockerError where error.isNotFound {
            throw Missing(description: "image \(image) is missing: run `scripts/base-image.sh fetch` (outside the netns) and `DOCKER_HOST=… scripts/base-image.sh import`")
        }
        return docker
    }

    /// A unique name for a test object.
    static func name(_ purpose: String) -> String { "dct-\(runID)-\(purpose)" }

    /// Labels that mark a test object as this run's.
    static func labels(_ extra: [String: String] = [:]) -> [String: String] {
        extra.merging(["lab.test": "docker-client", "lab.test.run": runID]) { a, _ in a }
    }
}

/// Runs `body`, then force-removes the containers it registered, even when it throws.
func withCleanup<T>(
    _ docker: DockerClient, _ body: (inout [String]) async throws -> T
) async throws -> T {
    var containers: [String] = []
    do {
        let value = try await body(&containers)
        for id in containers { try? await docker.removeContainer(id, force: true) }
        return value
    } catch {
        for id in containers { try? await docker.removeContainer(id, force: true) }
        throw error
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes (then records an issue).
func eventually(
    _ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out after \(timeout) waiting for \(what)", sourceLocation: sourceLocation)
}
