import NIOCore
import NIOWebSocket

/// The decisions of a ``FrameRelay``, without its sockets: the relay feeds it what happened and carries
/// out the action it returns (modelled on Hummingbird's `HTTP2ServerConnectionManager.StateMachine`).
///
/// Life of a session (`docs/protocol.md`, "The controller's `/ws`"):
/// - ``State/capturing(_:)`` until the worker's socket is up: client data frames queue (bounded: reading
///   pauses past `maxQueuedBytes`, each frame counting at least ``frameOverhead``) and the first message is
///   taken off the queue as the handshake (at most `maxHandshakeBytes` in at most
///   ``maxHandshakeFragments`` frames, else `.tooLarge` before anything is parsed);
/// - ``State/live(_:)``: the queue, then every frame, is forwarded; client text is checked for UTF-8 as
///   it passes, and invalid text stops the forwarding both ways;
/// - ``State/closed(clientFailed:)``: the worker side ended or the session is over.
///
/// Each of the relay's three promises (handshake, violation, worker end) is completed exactly once: the
/// machine says when.
struct FrameRelayStateMachine {
    /// Queue accounting per frame on top of its payload, so floods of empty frames are bounded too.
    static let frameOverhead = 64
    static let maxHandshakeFragments = 1024

    /// The client's first message.
    enum FirstMessage: Sendable, Equatable {
        case text([UInt8])
        case binary
        case tooLarge
        case invalidUTF8
        /// The client left (or the session ended) first.
        case closed
        /// Not complete within `LAB_HANDSHAKE_TIMEOUT_SECS`.
        case timedOut
    }

    struct Capture {
        var queue = CircularBuffer<WebSocketFrame>()
        var queuedBytes = 0
        /// Handshake frames counted so far (from the front of the queue) and their payload bytes.
        var scannedFrames = 0
        var scannedBytes = 0
        var readingPaused = false
    }

    struct Live {
        var readingPaused: Bool
        /// Client → worker: inside a text message (continuations are text), and its UTF-8 state.
        var clientInText = false
        var utf8 = UTF8Validator()
        /// Invalid client input was seen: nothing more is forwarded either way.
        var clientFailed = false
        /// A ping went to the worker and no pong came back yet.
        var awaitingPong = false
    }

    enum State {
        case capturing(Capture)
        case live(Live)
        case closed(clientFailed: Bool)
    }

    let maxQueuedBytes: Int
    let maxHandshakeBytes: Int
    private(set) var state = State.capturing(Capture())
    private var handshakeSettled = false
    private var violationSettled = false
    private var endSettled = false
    /// The client's close code and reason, when it sent one (passed on when the relay goes live).
    private(set) var clientClose: (code: WebSocketErrorCode, reason: String?)?
    /// Worker → client: inside a fragmented message; controller events wait in `injectQueue` for its end.
    private(set) var toClientMidMessage = false
    private var injectQueue: [ByteBuffer] = []

    init(maxQueuedBytes: Int, maxHandshakeBytes: Int) {
        self.maxQueuedBytes = maxQueuedBytes
        self.maxHandshakeBytes = maxHandshakeBytes
    }

    // ---- client → worker ----------------------------------------------------------------------

    enum ClientDataAction: Equatable {
        /// Queued; complete the handshake with the message if there is one; pause reading if asked.
        case captured(handshake: FirstMessage?, pauseReading: Bool)
        /// Forward the frame to the worker.
        case forward
        /// Invalid UTF-8: stop (report the violation if `report`).
        case fail(report: Bool)
        case drop
    }

    mutating func clientData(_ frame: WebSocketFrame) -> ClientDataAction {
        switch state {
        case .capturing(var c):
            c.queue.append(frame)
            c.queuedBytes += frame.data.readableBytes + Self.frameOverhead
            let first = handshakeSettled ? nil : takeHandshake(&c)
            var pause = false
            if c.queuedBytes > maxQueuedBytes, !c.readingPaused {
                c.readingPaused = true
                pause = true
            }
            state = .capturing(c)
            return .captured(handshake: first, pauseReading: pause)
        case .live(var l):
            guard !l.clientFailed else { return .drop }
            // RFC 6455 §8.1: text must be UTF-8; checked here, where every client frame passes in order.
            switch frame.opcode {
            case .text:
                l.clientInText = true
                l.utf8.reset()
            case .binary:
                l.clientInText = false
            default:
                break
            }
            if l.clientInText {
                guard l.utf8.feed(frame.data, key: frame.maskKey), !frame.fin || l.utf8.isComplete else {
                    l.clientFailed = true
                    state = .live(l)
                    return .fail(report: Self.settle(&violationSettled))
                }
            }
            state = .live(l)
            return .forward
        case .closed:
            return .drop
        }
    }

    /// Takes the first complete message off the queue (text: reassembled; binary: refused by the session).
    /// Incremental: each frame is counted once, so a handshake in many tiny fragments costs linear time.
    private mutating func takeHandshake(_ c: inout Capture) -> FirstMessage? {
        guard let first = c.queue.first else { return nil }
        if first.opcode == .binary || first.opcode == .continuation {
            while let f = c.queue.first {
                c.queue.removeFirst()
                c.queuedBytes -= f.data.readableBytes + Self.frameOverhead
                if f.fin { break }
            }
            handshakeSettled = true
            return .binary
        }
        var index = c.queue.index(c.queue.startIndex, offsetBy: c.scannedFrames)
        var complete = false
        while index != c.queue.endIndex {
            let f = c.queue[index]
            c.scannedFrames += 1
            c.scannedBytes += f.data.readableBytes
            if c.scannedBytes > maxHandshakeBytes || c.scannedFrames > Self.maxHandshakeFragments {
                handshakeSettled = true
                return .tooLarge
            }
            if f.fin {
                complete = true
                break
            }
            index = c.queue.index(after: index)
        }
        guard complete else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(c.scannedBytes)
        for _ in 0..<c.scannedFrames {
            bytes.append(contentsOf: WireFrames.plain(c.queue.removeFirst()).readableBytesView)
        }
        c.queuedBytes -= c.scannedBytes + c.scannedFrames * Self.frameOverhead
        handshakeSettled = true
        var check = UTF8Validator()
        guard check.feed(ByteBuffer(bytes: bytes), key: nil), check.isComplete else { return .invalidUTF8 }
        return .text(bytes)
    }

    struct ClientClosedAction: Equatable {
        /// Complete the handshake with `.closed`.
        var settleHandshake: Bool
        /// Pass a close frame on to the worker.
        var forwardClose: Bool
    }

    /// The client sent a close frame (`code` nil: it went away without one).
    mutating func clientClosed(code: WebSocketErrorCode?, reason: String?) -> ClientClosedAction {
        if let code { clientClose = (code, reason) }
        let live = if case .live = state { true } else { false }
        return ClientClosedAction(settleHandshake: Self.settle(&handshakeSettled), forwardClose: live)
    }

    /// The handshake deadline passed: true if it was still pending (complete it with `.timedOut`).
    mutating func handshakeDeadline() -> Bool { Self.settle(&handshakeSettled) }

    // ---- going live -----------------------------------------------------------------------------

    enum GoLiveAction {
        /// Forward the handshake, then `queued` (each through ``clientData(_:)``).
        case start(queued: CircularBuffer<WebSocketFrame>)
        /// Too late (the session ended): close the worker socket.
        case reject
    }

    mutating func goLive() -> GoLiveAction {
        guard case .capturing(let c) = state else { return .reject }
        state = .live(Live(readingPaused: c.readingPaused))
        return .start(queued: c.queue)
    }

    var clientFailed: Bool {
        switch state {
        case .live(let l): l.clientFailed
        case .closed(let failed): failed
        case .capturing: false
        }
    }

    /// The worker socket stopped taking writes: true if client reading must pause now.
    mutating func workerBlocked() -> Bool {
        guard case .live(var l) = state, !l.readingPaused else { return false }
        l.readingPaused = true
        state = .live(l)
        return true
    }

    /// The worker socket takes writes again: true if client reading must resume now.
    mutating func workerWritable() -> Bool {
        guard case .live(var l) = state, l.readingPaused else { return false }
        l.readingPaused = false
        state = .live(l)
        return true
    }

    // ---- worker → client ------------------------------------------------------------------------

    enum WorkerDataAction: Equatable {
        /// Forward the frame (`track`: it starts a text message, look into it), then `thenInject`.
        case forward(track: Bool, thenInject: [ByteBuffer])
        case drop
    }

    mutating func workerData(opcode: WebSocketOpcode, fin: Bool) -> WorkerDataAction {
        // After a client violation the socket is being failed: nothing may follow the close.
        guard !clientFailed else { return .drop }
        let track = !toClientMidMessage && opcode == .text
        toClientMidMessage = !fin
        var inject: [ByteBuffer] = []
        if fin, !injectQueue.isEmpty { swap(&inject, &injectQueue) }
        return .forward(track: track, thenInject: inject)
    }

    /// A controller event for the client: the buffer to write now, or nil if it waits for the end of a
    /// fragmented message.
    mutating func inject(_ buffer: ByteBuffer) -> ByteBuffer? {
        guard toClientMidMessage else { return buffer }
        injectQueue.append(buffer)
        return nil
    }

    // ---- keep-alive toward the worker -------------------------------------------------------------

    enum PingAction: Equatable {
        case sendPing
        /// The last ping was not answered: the worker is gone.
        case workerLost
        /// Not live yet: nothing to do this time.
        case skip
        case stop
    }

    mutating func pingTick() -> PingAction {
        switch state {
        case .capturing:
            return .skip
        case .closed:
            return .stop
        case .live(var l):
            if l.awaitingPong { return .workerLost }
            l.awaitingPong = true
            state = .live(l)
            return .sendPing
        }
    }

    mutating func workerPong() {
        guard case .live(var l) = state else { return }
        l.awaitingPong = false
        state = .live(l)
    }

    // ---- the end --------------------------------------------------------------------------------

    /// The worker side ended (close frame, lost socket, no pong): true if it is the first end to report.
    mutating func workerEnded() -> Bool {
        close()
        return Self.settle(&endSettled)
    }

    /// Stops forwarding (the client left, the session is closing the worker socket).
    mutating func close() {
        state = .closed(clientFailed: clientFailed)
    }

    struct FinalizeAction: Equatable {
        var settleHandshake: Bool
        var settleEnd: Bool
        var settleViolation: Bool
    }

    /// The session is over: whatever is still pending gets completed.
    mutating func finalize() -> FinalizeAction {
        let action = FinalizeAction(
            settleHandshake: Self.settle(&handshakeSettled), settleEnd: workerEnded(), settleViolation: Self.settle(&violationSettled))
        return action
    }

    /// A one-line picture, for diagnostics.
    var description: String {
        switch state {
        case .capturing(let c): "capturing queued=\(c.queue.count) bytes=\(c.queuedBytes) handshake=\(handshakeSettled) paused=\(c.readingPaused)"
        case .live(let l): "live paused=\(l.readingPaused) failed=\(l.clientFailed)"
        case .closed(let failed): "closed failed=\(failed)"
        }
    }

    /// True the first time only.
    private static func settle(_ flag: inout Bool) -> Bool {
        defer { flag = true }
        return !flag
    }
}
