import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The only way bytes reach one client's socket.
///
/// Writes wait for the socket. `watchSlowClient()` returns when a write has made no progress for the
/// send timeout, and the client is then closed as too slow (1008) instead of being buffered for without
/// bound. Safe to use from several tasks at once.
final class ClientSocket: Sendable {
    let outbound: WebSocketOutboundWriter
    let sendTimeout: Duration
    let logger: Logger
    private let inFlight = Atomic<Int>(0)
    private let lastProgress = Atomic<UInt64>(0)
    private let closed = Atomic<Bool>(false)

    init(outbound: WebSocketOutboundWriter, sendTimeout: Duration, logger: Logger) {
        self.outbound = outbound
        self.sendTimeout = sendTimeout
        self.logger = logger
    }

    /// An event outside the session's log (a refusal, `attached`, a reply to this client's bad frame):
    /// no `seq`.
    @discardableResult
    func send(_ event: RelayEvent, sessionID: String) async -> Bool {
        var event = event
        if event.sessionID.isEmpty { event.sessionID = sessionID }
        return await write(event.encoded())
    }

    func error(_ text: String, sessionID: String) async {
        await send(RelayEvent("error", text: text), sessionID: sessionID)
    }

    /// Writes one text frame. Returns false when the client is gone.
    func write(_ bytes: [UInt8]) async -> Bool {
        if closed.load(ordering: .relaxed) { return false }
        if inFlight.add(1, ordering: .acquiringAndReleasing).oldValue == 0 {
            lastProgress.store(Self.monotonicNanos(), ordering: .relaxed)
        }
        defer {
            lastProgress.store(Self.monotonicNanos(), ordering: .relaxed)
            inFlight.subtract(1, ordering: .acquiringAndReleasing)
        }
        do {
            try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: bytes))))
            return true
        } catch {
            closed.store(true, ordering: .relaxed)
            return false
        }
    }

    /// Returns when a pending write has been stuck for the send timeout; runs until cancelled otherwise.
    func watchSlowClient() async {
        // Clamped: a zero or negative timeout means "at once", never a trap.
        let seconds = UInt64(clamping: min(sendTimeout.components.seconds, Int64(UInt64.max / 2_000_000_000)))
        let limit = seconds * 1_000_000_000 + UInt64(clamping: sendTimeout.components.attoseconds / 1_000_000_000)
        let tick = min(sendTimeout / 4, .seconds(1))
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            guard inFlight.load(ordering: .relaxed) > 0 else { continue }
            if Self.monotonicNanos() - lastProgress.load(ordering: .relaxed) > limit {
                logger.warning("client too slow: no send progress; disconnecting", metadata: ["send_timeout": "\(sendTimeout)"])
                closed.store(true, ordering: .relaxed)
                return
            }
        }
    }

    /// Closes the socket with a code and reason (at most once).
    func close(_ code: WebSocketErrorCode, reason: String?) async {
        if closed.exchange(true, ordering: .relaxed) { return }
        try? await outbound.close(code, reason: reason)
    }

    static func monotonicNanos() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
