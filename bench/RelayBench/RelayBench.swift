// Load client for relay servers (relay-worker or the Python ai-relay): measures events/s of one
// streamed turn and the server's RSS per idle session. Driven by bench/relay_bench.py, which starts
// both servers with the same fake CLI and prints the ratios.
import ArgumentParser
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization

@main
struct RelayBench: AsyncParsableCommand {
    @Option(help: "Relay URL.") var url: String
    @Option(help: "Session folder.") var folder: String
    @Option(help: "Server pid (for RSS).") var pid: Int32
    @Option(help: "Streamed turns to time.") var runs = 3
    @Option(help: "Idle sessions to open.") var idle = 200

    func run() async throws {
        let logger = Logger(label: "bench")
        var rates: [Double] = []
        var counted = 0
        for _ in 0..<runs {
            let (events, seconds) = try await streamTurn(logger: logger)
            counted = events
            rates.append(Double(events) / seconds)
        }
        rates.sort()
        let before = (rss(pid), anonymous(pid))
        let perSession = try await idleSessions(count: idle, logger: logger)
        let result: [String: Any] = [
            "events_per_turn": counted, "events_per_sec_median": rates[rates.count / 2],
            "events_per_sec_best": rates.last!, "rss_before_kib": before.0, "rss_per_idle_session_kib": perSession.rss,
            "anon_before_kib": before.1, "anon_per_idle_session_kib": perSession.anonymous,
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// One turn: handshake, prompt, count every event until the final `response`.
    func streamTurn(logger: Logger) async throws -> (Int, Double) {
        let handshake = #"{"tool":"claude","folder":"\#(folder)"}"#
        let outcome = Mutex<(Int, Duration)>((0, .zero))
        _ = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 24), logger: logger) {
            inbound, outbound, _ in
            try await outbound.write(.text(handshake))
            var frames = inbound.messages(maxSize: 1 << 26).makeAsyncIterator()
            while let m = try await frames.next() {
                if case .text(let s) = m, eventType(s) == "session_start" { break }
            }
            let started = ContinuousClock.now
            var count = 0
            try await outbound.write(.text("bench"))
            while let m = try await frames.next() {
                guard case .text(let s) = m else { continue }
                count += 1
                if eventType(s) == "response", s.contains("streamed ") {
                    let elapsed = ContinuousClock.now - started
                    outcome.withLock { $0 = (count, elapsed) }
                    break
                }
            }
            try await outbound.close(.normalClosure, reason: nil)
        }
        let (count, elapsed) = outcome.withLock { $0 }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (count, seconds)
    }

    /// Opens `count` sessions (handshake answered with `session_start`, no prompt) and returns the
    /// server's RSS and private anonymous memory growth per session, in KiB.
    func idleSessions(count: Int, logger: Logger) async throws -> (rss: Double, anonymous: Double) {
        let handshake = #"{"tool":"claude","folder":"\#(folder)"}"#
        let before = (rss(pid), anonymous(pid))
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let gate = Gate(stream: release)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            // One at a time: the steady-state cost of an idle session, not the peak of a connect burst.
            var readyIterator = ready.makeAsyncIterator()
            for _ in 0..<count {
                group.addTask {
                    _ = try await WebSocketClient.connect(url: url, configuration: .init(), logger: logger) {
                        inbound, outbound, _ in
                        try await outbound.write(.text(handshake))
                        var frames = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                        while let m = try await frames.next() {
                            if case .text(let s) = m, eventType(s) == "session_start" { break }
                        }
                        readyContinuation.yield()
                        await gate.wait()
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                }
                _ = await readyIterator.next()
            }
            try await Task.sleep(for: .milliseconds(500))
            let after = (rss(pid), anonymous(pid))
            releaseContinuation.yield()
            releaseContinuation.finish()
            try await group.waitForAll()
            return (Double(after.0 - before.0) / Double(count), Double(after.1 - before.1) / Double(count))
        }
    }
}

/// Lets many tasks wait for one signal.
actor Gate {
    var open = false
    var waiters: [CheckedContinuation<Void, Never>] = []
    init(stream: AsyncStream<Void>) {
        Task { [self] in
            for await _ in stream { await self.openGate() }
            await self.openGate()
        }
    }
    func openGate() {
        open = true
        waiters.forEach { $0.resume() }
        waiters.removeAll()
    }
    func wait() async {
        if open { return }
        await withCheckedContinuation { waiters.append($0) }
    }
}

/// The `type` of an event frame, without a full JSON parse (so the client is not the bottleneck).
func eventType(_ s: String) -> Substring? {
    guard let r = s.range(of: "\"type\"") else { return nil }
    var i = r.upperBound
    while i < s.endIndex, s[i] == " " || s[i] == ":" { i = s.index(after: i) }
    guard i < s.endIndex, s[i] == "\"" else { return nil }
    let start = s.index(after: i)
    guard let end = s[start...].firstIndex(of: "\"") else { return nil }
    return s[start..<end]
}

/// Resident set size of a process, KiB (children not included).
func rss(_ pid: Int32) -> Int { procField("/proc/\(pid)/status", "VmRSS:") }

/// Private anonymous memory of a process, KiB: what a session really costs (RSS also counts shared
/// library pages that every process of one image shares).
func anonymous(_ pid: Int32) -> Int { procField("/proc/\(pid)/smaps_rollup", "Anonymous:") }

func procField(_ path: String, _ key: String) -> Int {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(key) {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}
