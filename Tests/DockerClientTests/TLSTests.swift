import DockerClient
import Foundation
import Testing

/// A second engine on `tcp://127.0.0.1:<port>` that requires TLS client certificates
/// (`scripts/dockerd.sh start-tls` generates a CA, a server certificate for 127.0.0.1 and a client certificate).
@Suite(.enabled(if: TestEngine.enabled, "set LAB_TEST_DOCKER_HOST (see scripts/dockerd.sh)"))
struct TLSTests {
    @Test func connectsWithClientCertificatesAndIsRefusedWithout() async throws {
        _ = try TestEngine.client()  // fails clearly when the engine setup is missing
        let state = "/tmp/dct-tls-\(TestEngine.runID)"
        let started = try await Script.run(["start-tls", state], timeout: .seconds(90))
        defer {
            _ = try? Script.runSync(["stop", state])
            try? FileManager.default.removeItem(atPath: state)
        }
        try #require(started.status == 0, "start-tls failed: \(started.stderr)")
        let environment = Script.exports(started.stdout)
        let host = try #require(environment["DOCKER_HOST"])
        let certs = try #require(environment["DOCKER_CERT_PATH"])
        #expect(host.hasPrefix("tcp://127.0.0.1:"))
        #expect(environment["DOCKER_TLS_VERIFY"] == "1")

        // With the client certificate: a working client.
        let docker = try DockerClient.fromEnvironment(environment)
        guard case .tcp(_, _, let tls?) = docker.configuration.endpoint else {
            Issue.record("expected a TLS endpoint, got \(docker.configuration.endpoint)")
            return
        }
        #expect(tls.clientCertificatePath == "\(certs)/cert.pem")
        try await docker.ping()
        #expect(try await docker.version().apiVersion == "1.41")
        #expect(try await docker.apiVersion() == "1.41")
        #expect(try await docker.info().id != nil)
        _ = try await docker.listContainers(all: true)
        await #expect { _ = try await docker.inspectContainer("missing") } throws: { ($0 as? DockerError)?.isNotFound == true }

        // Trusting the CA but presenting no certificate: the handshake is refused.
        let anonymous = try DockerClient(configuration: .init(host: host, tls: .init(caCertificatePath: "\(certs)/ca.pem")))
        await #expect { try await anonymous.ping() } throws: { error in
            (error as? DockerError)?.code == .tls
        }
        // A client that does not trust the server's CA refuses the server.
        let distrustful = try DockerClient(
            configuration: .init(
                host: host,
                tls: .init(
                    caCertificatePath: "\(certs)/cert.pem", clientCertificatePath: "\(certs)/cert.pem",
                    clientKeyPath: "\(certs)/key.pem")))
        await #expect { try await distrustful.ping() } throws: { ($0 as? DockerError)?.code == .tls }
        // Plain HTTP to the TLS port: the engine answers 400, not an API result.
        let plain = try DockerClient(configuration: .init(host: host))
        await #expect { try await plain.ping() } throws: { ($0 as? DockerError)?.status == 400 }
    }
}

/// Runs `scripts/dockerd.sh` from the repository this test file lives in.
enum Script {
    struct TimedOut: Error, CustomStringConvertible {
        var description: String
    }

    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var path: String {
        if let root = ProcessInfo.processInfo.environment["LAB_REPO_ROOT"] { return "\(root)/scripts/dockerd.sh" }
        let testDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().resolvingSymlinksInPath()
        return testDir.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/dockerd.sh").path
    }

    /// Runs the script off the cooperative pool and gives up (terminating it) after `timeout`.
    static func run(_ arguments: [String], timeout: Duration) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Swift.Result { try runSync(arguments, timeout: timeout) })
            }
        }
    }

    static func runSync(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [path] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        let seconds = Double(timeout.components.seconds)
        if done.wait(timeout: .now() + seconds) == .timedOut {
            process.terminate()
            if done.wait(timeout: .now() + 5) == .timedOut {
                throw Script.TimedOut(description: "scripts/dockerd.sh \(arguments.joined(separator: " ")) did not finish in \(timeout)")
            }
        }
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    /// `export NAME=value` lines to a dictionary.
    static func exports(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count)
            guard let eq = pair.firstIndex(of: "=") else { continue }
            values[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        return values
    }
}
