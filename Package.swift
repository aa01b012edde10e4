// swift-tools-version:6.2
import PackageDescription

// Data path: client → LabCtrl (controller) → RelayWorker (worker) → Adapter → agent CLI.
let hb = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let hbWS = Target.Dependency.product(name: "HummingbirdWebSocket", package: "hummingbird-websocket")
let hbWSClient = Target.Dependency.product(name: "HummingbirdWSClient", package: "hummingbird-websocket")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let argParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let hbCore = Target.Dependency.product(name: "HummingbirdCore", package: "hummingbird")
let nioWS = Target.Dependency.product(name: "NIOWebSocket", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let httpTypes = Target.Dependency.product(name: "HTTPTypes", package: "swift-http-types")
let jwt = Target.Dependency.product(name: "JWTKit", package: "jwt-kit")

let package = Package(
    name: "lab",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "relay-worker", targets: ["RelayWorker"]),
        .executable(name: "labctrl", targets: ["LabCtrl"]),
        .library(name: "DockerClient", targets: ["DockerClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // ---- shared pieces -------------------------------------------------------------
        // Wire types shared by worker and controller: JSON values, the event envelope, the handshake.
        .target(name: "RelayProtocol"),
        // The HTTP/1 + WebSocket child channel of worker and controller: refusals with their real status,
        // session handlers installed before the first frame.
        .target(
            name: "WebSocketServerChannel",
            dependencies: [hbCore, hbWS, nioCore, nioHTTP1, nioWS, httpTypes, logging, .product(name: "NIOEmbedded", package: "swift-nio")]),
        // C helpers: spawn a child in its own session (pipes or a PTY); Swift cannot fork safely.
        .target(name: "CSpawn"),
        // Child processes with async pipes/PTY, process-group kill and one reaper thread.
        .target(name: "ChildProcess", dependencies: ["CSpawn", nioCore, nioPosix]),
        // The one timeout helper (worker and controller).
        .target(name: "Deadline"),

        // ---- worker: WebSocket server → session → adapter → CLI ---------------------------
        .target(
            name: "RelayWorkerCore",
            dependencies: [
                "RelayProtocol", "ChildProcess", "WebSocketServerChannel", "Deadline", hb, hbCore, hbWS, nioCore, nioPosix, nioHTTP1, logging, lifecycle,
                httpTypes,
                .product(name: "NIOWebSocket", package: "swift-nio"),
                // Cortex (HTTP + SSE) and the OAuth refreshes of the auth helpers.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(name: "RelayWorker", dependencies: ["RelayWorkerCore", "ChildProcess", argParser, logging, nioCore, nioPosix]),

        // ---- Docker Engine API over libcurl -------------------------------------------------
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "DockerClient", dependencies: ["CCurl"]),

        // ---- controller: auth → hub → backend (Docker | processes) → proxy -----------------
        .target(
            name: "LabCtrlCore",
            dependencies: [
                "RelayProtocol", "ChildProcess", "DockerClient", "WebSocketServerChannel", "Deadline", hb, hbCore, hbWS, hbWSClient, nioCore, nioPosix,
                nioWS, nioHTTP1, httpTypes, logging, lifecycle, jwt,
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The web console ships inside the binary: no build step, no files to deploy.
            resources: [
                .embedInCode("Console/index.html"), .embedInCode("Console/console.js"),
                .embedInCode("Console/console.css"),
            ]
        ),
        .executableTarget(name: "LabCtrl", dependencies: ["LabCtrlCore", "ChildProcess", argParser, logging]),

        // ---- benchmarks (README: scripts/bench.sh) ----------------------------------------
        .executableTarget(name: "RelayBench", dependencies: [hbWSClient, httpTypes, nioCore, nioPosix, logging, argParser], path: "bench/RelayBench"),
        .executableTarget(name: "DockerBench", dependencies: ["DockerClient", argParser], path: "bench/DockerBench"),

        // ---- tests ------------------------------------------------------------------------
        .testTarget(name: "RelayProtocolTests", dependencies: ["RelayProtocol"]),
        .testTarget(name: "ChildProcessTests", dependencies: ["ChildProcess", nioCore]),
        .testTarget(name: "DeadlineTests", dependencies: ["Deadline"]),
        .testTarget(name: "RelayWorkerTests", dependencies: ["RelayWorkerCore", "RelayProtocol", "ChildProcess"]),
        .testTarget(name: "DockerClientTests", dependencies: ["DockerClient"]),
        .testTarget(
            name: "WebSocketServerChannelTests", dependencies: ["WebSocketServerChannel", hb, hbCore, nioCore, nioPosix, nioWS, httpTypes, logging]),
        .testTarget(name: "LabCtrlTests", dependencies: ["LabCtrlCore", "RelayProtocol", jwt, httpTypes, hbCore, nioWS, lifecycle]),
    ]
)

// ---- fuzzing (scripts/fuzz.sh) --------------------------------------------------------
// libFuzzer targets, only in the manifest when LAB_FUZZ=1: they link libFuzzer's driver, which exists
// only with `-sanitize=fuzzer`, and the normal build should not pay for them.
// Only this package's Swift modules are instrumented (coverage + ASan): the dependencies keep the
// normal debug build's flags, so the fuzz build reuses their objects from `.build` instead of
// compiling swift-nio, Hummingbird and BoringSSL again (about 13 minutes on 2 cores).
if Context.environment["LAB_FUZZ"] == "1" {
    let sanitize = ["-sanitize=fuzzer,address"]
    let instrumented: Set<String> = [
        "RelayProtocol", "WebSocketServerChannel", "ChildProcess", "Deadline", "RelayWorkerCore", "DockerClient", "LabCtrlCore",
    ]
    for target in package.targets where instrumented.contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(sanitize)]
    }
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzJSON", ["RelayProtocol"]),
        ("FuzzHandshake", ["RelayWorkerCore", "RelayProtocol"]),
        ("FuzzClientMessage", ["RelayWorkerCore", "RelayProtocol"]),
        ("FuzzFrameInspector", ["LabCtrlCore", "RelayProtocol", nioCore]),
        ("FuzzTokensFile", ["LabCtrlCore"]),
        ("FuzzCredentials", ["LabCtrlCore", hbCore, httpTypes]),
    ]
    package.targets.append(.target(name: "FuzzDriver", path: "Fuzz/FuzzDriver"))
    for t in fuzzTargets {
        package.targets.append(
            .executableTarget(
                name: t.name, dependencies: t.dependencies + ["FuzzDriver"], path: "Fuzz/\(t.name)",
                swiftSettings: [.unsafeFlags(sanitize)], linkerSettings: [.unsafeFlags(sanitize)]))
    }
}
