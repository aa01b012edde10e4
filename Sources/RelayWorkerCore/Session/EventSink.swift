import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The only way events reach a client.
///
/// Writes wait for the socket, so back-pressure flows to whoever produced the event (ultimately the
/// child's stdout pipe, which then stops being read). `watchSlowClient()` closes the connection as
/// "client too slow" when a write has made no progress for the send timeout, instead of buffering
/// without bound. Safe to use from several tasks at once.
public final class EventSink: Sendable {
    let outbound: WebSocketOutboundWriter
    let sessionID: Mutex<String>
    let sendTimeout: Duration
    let logger: Logger
    private let inFlight = Atomic<Int>(0)
    private let lastProgress = Atomic<UInt64>(0)
    private let closed = Atomic<Bool>(false)

    init(outbound: WebSocketOutboundWriter, sendTimeout: Duration, logger: Logger) {
        self.outbound = outbound
        self.sessionID = Mutex("")
        self.sendTimeout = sendTimeout
        self.logger = logger
    }

    func setSessionID(_ id: String) { sessionID.withLock { $0 = id } }

    /// Sends one event, stamping the session id. Returns false when the client is gone.
    @discardableResult
    public func send(_ event: RelayEvent) async -> Bool {
        var event = event
        if event.sessionID.isEmpty { event.sessionID = sessionID.withLock { $0 } }
        if event.isEmpty { return true }
        return await sendFrame(event.encoded())
    }

    public func error(_ text: String, metadata: JSON? = nil) async {
        await send(RelayEvent("error", text: text, metadata: metadata))
    }

    private func sendFrame(_ bytes: [UInt8]) async -> Bool {
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

    /// Returns when a pending write has been stuck for the send timeout (the session then ends, and
    /// the WebSocket layer closes the connection); runs until cancelled otherwise.
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
