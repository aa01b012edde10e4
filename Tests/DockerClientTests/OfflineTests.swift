@testable import DockerClient
import Foundation
import Testing

/// Parts that need no engine: configuration parsing, framing, line splitting, tar, errors for a missing engine.
@Suite struct OfflineTests {
    @Test func dockerHostParsing() throws {
        #expect(try DockerClient.Configuration(host: "").endpoint == .unixSocket(path: "/var/run/docker.sock"))
        #expect(try DockerClient.Configuration(host: "unix:///tmp/x.sock").endpoint == .unixSocket(path: "/tmp/x.sock"))
        #expect(try DockerClient.Configuration(host: "tcp://10.0.0.5:2375").endpoint == .tcp(host: "10.0.0.5", port: 2375, tls: nil))
        #expect(try DockerClient.Configuration(host: "tcp://[::1]:2376").endpoint == .tcp(host: "::1", port: 2376, tls: nil))
        let tls = DockerClient.Configuration.TLS(caCertificatePath: "/c/ca.pem")
        #expect(try DockerClient.Configuration(host: "tcp://h", tls: tls).endpoint == .tcp(host: "h", port: 2376, tls: tls))
        #expect(throws: DockerError.self) { try DockerClient.Configuration(host: "ssh://h") }
        #expect(throws: DockerError.self) { try DockerClient.Configuration(host: "tcp://h:notaport") }
        #expect(throws: DockerError.self) { try DockerClient.Configuration(host: "unix://relative.sock") }
    }

    @Test func environmentWithTLS() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dct-env-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            #expect(FileManager.default.createFile(atPath: "\(dir)/\(file)", contents: Data("x".utf8)))
        }
        let config = try DockerClient.Configuration.fromEnvironment([
            "DOCKER_HOST": "tcp://127.0.0.1:9999", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": dir,
            "DOCKER_API_VERSION": "1.40",
        ])
        #expect(
            config.endpoint
                == .tcp(
                    host: "127.0.0.1", port: 9999,
                    tls: .init(
                        caCertificatePath: "\(dir)/ca.pem", clientCertificatePath: "\(dir)/cert.pem",
                        clientKeyPath: "\(dir)/key.pem", verifyPeer: true)))
        #expect(config.apiVersion == "1.40")
        // Verification without a CA file is a configuration error, not a silent downgrade.
        #expect(throws: DockerError.self) {
            try DockerClient.Configuration.fromEnvironment(["DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"])
        }
    }

    @Test func versionChoice() {
        func v(_ api: String, _ min: String?) -> SystemVersion {
            try! JSONDecoder().decode(
                SystemVersion.self,
                from: Data(#"{"Version":"x","ApiVersion":"\#(api)"\#(min.map { #","MinAPIVersion":"\#($0)""# } ?? "")}"#.utf8))
        }
        #expect(VersionNegotiation.choose(server: v("1.41", "1.12"), maximum: "1.41") == "1.41")
        #expect(VersionNegotiation.choose(server: v("1.40", "1.12"), maximum: "1.41") == "1.40")
        #expect(VersionNegotiation.choose(server: v("1.47", "1.24"), maximum: "1.41") == "1.41")
        #expect(VersionNegotiation.choose(server: v("1.51", "1.44"), maximum: "1.41") == "1.44")
        #expect(VersionNegotiation.compare("1.9", "1.41") < 0)
    }

    @Test func filtersAndQueryEncoding() {
        var filters: DockerFilters = ["label": ["a=b"]]
        filters.add("status", "running")
        #expect(filters.json == #"{"label":["a=b"],"status":["running"]}"#)
        var query = Query()
        query.add(filters: filters)
        query.add("all", true)
        #expect(query.string == "?filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%2C%22status%22%3A%5B%22running%22%5D%7D&all=1")
        #expect(Query.imageSegment("reg.io:5000/lab/base:v1") == "reg.io:5000/lab/base:v1")
        #expect(Query.segment("a/b c") == "a%2Fb%20c")
    }

    @Test func demultiplexesFramesSplitAcrossChunks() async throws {
        func frame(_ source: UInt8, _ text: String) -> [UInt8] {
            let bytes = Array(text.utf8)
            let n = UInt32(bytes.count)
            return [source, 0, 0, 0, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + bytes
        }
        let all = frame(1, "out 1\n") + frame(2, "err 1\n") + frame(1, String(repeating: "x", count: 300)) + frame(2, "")
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        var i = 0
        for size in [3, 5, 1, 20, 100, 7] where i < all.count {  // odd boundaries, including inside headers
            continuation.yield(Array(all[i..<min(i + size, all.count)]))
            i += size
        }
        continuation.yield(Array(all[min(i, all.count)...]))
        continuation.finish()
        var chunks: [LogChunk] = []
        for try await chunk in LogStream(chunks: stream, multiplexed: true) { chunks.append(chunk) }
        #expect(chunks.map(\.source) == [.stdout, .stderr, .stdout])
        #expect(chunks[0].text == "out 1\n")
        #expect(chunks[1].text == "err 1\n")
        #expect(chunks[2].bytes.count == 300)
    }

    @Test func splitsJSONLinesAndThrowsOnErrorLines() async throws {
        let text = #"{"status":"a"}"# + "\n" + #"{"status":"b","progressDetail":{"current":1,"total":2}}"# + "\r\n\n"
            + #"{"error":"boom","errorDetail":{"message":"boom"}}"#
        let bytes = Array(text.utf8)
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        for start in stride(from: 0, to: bytes.count, by: 4) {
            continuation.yield(Array(bytes[start..<min(start + 4, bytes.count)]))
        }
        continuation.finish()
        var seen: [String] = []
        await #expect {
            for try await message in ProgressStream(chunks: stream, request: "test") { seen.append(message.status ?? "") }
        } throws: { ($0 as? DockerError)?.code == .operationFailed && ($0 as? DockerError)?.message == "boom" }
        #expect(seen == ["a", "b"])
    }

    @Test func tarArchiveHasValidHeaders() throws {
        var tar = TarArchive()
        tar.addFile("Dockerfile", text: "FROM scratch\n")
        tar.addDirectory("etc")
        tar.addFile("etc/hello", contents: [1, 2, 3], mode: 0o600)
        let bytes = tar.bytes
        #expect(bytes.count % 512 == 0)
        // Cross-check with the system tar.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dct-\(UUID().uuidString).tar").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        process.arguments = ["-tvf", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let listing = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(listing.contains("Dockerfile") && listing.contains("etc/hello") && listing.contains("-rw-------"))
    }

    @Test func missingSocketIsEngineUnreachable() async throws {
        let docker = DockerClient(configuration: .init(endpoint: .unixSocket(path: "/nonexistent/docker.sock")))
        await #expect { try await docker.ping() } throws: { ($0 as? DockerError)?.code == .engineUnreachable }
        // Refused TCP connection on loopback (port 1 is not listening).
        let tcp = DockerClient(configuration: .init(endpoint: .tcp(host: "127.0.0.1", port: 1, tls: nil)))
        await #expect { _ = try await tcp.version() } throws: { ($0 as? DockerError)?.code == .engineUnreachable }
    }
}
