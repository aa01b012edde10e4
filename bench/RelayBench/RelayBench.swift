// Load client for relay servers (relay-worker or the Python ai-relay): measures events/s of one
// streamed turn and the server's RSS per idle session. Driven by bench/relay_bench.py, which starts
// both servers with the same fake CLI and prints the ratios.
import ArgumentParser
import Foundation
import HTTPTypes
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
    @Option(help: "Idle sessions to open (0: none).") var idle = 200
    @Option(help: "Sequential `/cost` round trips to time on one session (0: none).") var latency = 0
    @Option(help: "Only time re-attaches to this session id (docs/protocol.md §7), then exit.") var attach: String?
    @Option(help: "With --attach: the session's last seq (the replay ends there).") var attachLast = 0
    @Option(help: "With --attach: re-attaches to time.") var attaches = 30
    @Option(help: "Header sent with every upgrade, \"Name: value\" (e.g. the worker's or the user's token).")
    var header: [String] = []

    var configuration: WebSocketClientConfiguration {
        var fields = HTTPFields()
        for h in header {
            guard let colon = h.firstIndex(of: ":"), let name = HTTPField.Name(String(h[..<colon])) else { continue }
            fields.append(HTTPField(name: name, value: h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return .init(maxFrameSize: 1 << 24, additionalHeaders: fields)
    }

    func run() async throws {
        let logger = Logger(label: "bench")
        if let attach {
            let times = try await reattaches(attach, last: attachLast, count: attaches, logger: logger).sorted()
            func pct(_ p: Double) -> Double { times[min(times.count - 1, Int((p / 100 * Double(times.count - 1)).rounded()))] }
            print(#"{"attach_ms_p50":\#(pct(50)),"attach_ms_p99":\#(pct(99))}"#)
            return
        }
        var rates: [Double] = []
        var counted = 0
        for _ in 0..<runs {
            let (events, seconds) = try await streamTurn(logger: logger)
            counted = events
            rates.append(Double(events) / seconds)
        }
        rates.sort()
        let before = (rss(pid), anonymous(pid))
        let perSession = idle > 0 ? try await idleSessions(count: idle, logger: logger) : (rss: 0, anonymous: 0)
        let roundTrips = latency > 0 ? try await costRoundTrips(count: latency, logger: logger) : []
        var result: [String: Any] = [
            "events_per_turn": counted, "events_per_sec_median": rates[rates.count / 2],
            "events_per_sec_best": rates.last!, "rss_before_kib": before.0, "rss_per_idle_session_kib": perSession.rss,
            "anon_before_kib": before.1, "anon_per_idle_session_kib": perSession.anonymous,
        ]
        if !roundTrips.isEmpty {
            let sorted = roundTrips.sorted()
            func pct(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count - 1)).rounded()))] }
            result["cost_rtt_ms_p50"] = pct(50)
            result["cost_rtt_ms_p99"] = pct(99)
        }
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// One turn: handshake, prompt, count every event until the final `response`.
    func streamTurn(logger: Logger) async throws -> (Int, Double) {
        let handshake = #"{"tool":"claude","folder":"\#(folder)"}"#
        let outcome = Mutex<(Int, Duration)>((0, .zero))
        _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) {
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
                    _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) {
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

extension RelayBench {
    /// `count` sequential `/cost` prompts on one session (the worker answers them itself, so the round
    /// trip is transport + proxy): milliseconds from the send to the `input_ack`.
    func costRoundTrips(count: Int, logger: Logger) async throws -> [Double] {
        let handshake = #"{"tool":"claude","folder":"\#(folder)"}"#
        let times = Mutex<[Double]>([])
        _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
            try await outbound.write(.text(handshake))
            var frames = inbound.messages(maxSize: 1 << 26).makeAsyncIterator()
            while let m = try await frames.next() {
                if case .text(let s) = m, eventType(s) == "session_start" { break }
            }
            var out: [Double] = []
            out.reserveCapacity(count)
            for _ in 0..<count {
                let sent = ContinuousClock.now
                try await outbound.write(.text(#"{"type":"user_message","content":"/cost"}"#))
                while let m = try await frames.next() {
                    if case .text(let s) = m, eventType(s) == "input_ack" { break }
                }
                let d = ContinuousClock.now - sent
                out.append(Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
            }
            times.withLock { $0 = out }
            try await outbound.close(.normalClosure, reason: nil)
        }
        return times.withLock { $0 }
    }
}

extension RelayBench {
    /// `count` re-attaches from seq 0: milliseconds from the socket's open to the event with seq `last`.
    func reattaches(_ sid: String, last: Int, count: Int, logger: Logger) async throws -> [Double] {
        var out: [Double] = []
        let needle = "\"seq\":\(last),"
        for _ in 0..<count {
            let started = ContinuousClock.now
            let took = Mutex<Duration?>(nil)
            _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                try await outbound.write(.text(#"{"attach":"\#(sid)","after_seq":0}"#))
                var frames = inbound.messages(maxSize: 1 << 26).makeAsyncIterator()
                while let m = try await frames.next() {
                    if case .text(let s) = m, s.prefix(200).contains(needle) {
                        took.withLock { $0 = ContinuousClock.now - started }
                        break
                    }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
            guard let d = took.withLock({ $0 }) else { throw CancellationError() }
            out.append(Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
        }
        return out
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
