import NIOCore
import NIOWebSocket
import Testing

@testable import LabCtrlCore

@Suite struct FrameRelayStateMachineTests {
    typealias Machine = FrameRelayStateMachine

    static func text(_ s: String, fin: Bool = true, masked: Bool = false) -> WebSocketFrame {
        let key: WebSocketMaskingKey? = masked ? WebSocketMaskingKey([7, 1, 9, 3]) : nil
        var data = ByteBuffer(string: s)
        if let key { data = WireFrames.unmask(data, key: key) }  // XOR is its own inverse: this masks
        return WebSocketFrame(fin: fin, opcode: .text, maskKey: key, data: data)
    }

    static func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: opcode, data: ByteBuffer(bytes: bytes))
    }

    static func machine(queue: Int = 1 << 20, handshake: Int = 1 << 16) -> Machine {
        Machine(maxQueuedBytes: queue, maxHandshakeBytes: handshake)
    }

    static func live(_ m: inout Machine) {
        _ = m.clientData(text("{}"))
        guard case .start = m.goLive() else {
            Issue.record("could not go live")
            return
        }
    }

    /// One mutating step, so `#expect` sees a value (it cannot call mutating members itself).
    static func step<T>(_ m: inout Machine, _ f: (inout Machine) -> T) -> T { f(&m) }

    // ---- the handshake ---------------------------------------------------------------------

    @Test func aMaskedTextMessageIsTheHandshake() {
        var m = Self.machine()
        #expect(m.clientData(Self.text("{\"tool\":", fin: false, masked: true)) == .captured(handshake: nil, pauseReading: false))
        let cont = WebSocketFrame(fin: true, opcode: .continuation, data: ByteBuffer(string: "\"claude\"}"))
        #expect(m.clientData(cont) == .captured(handshake: .text(Array("{\"tool\":\"claude\"}".utf8)), pauseReading: false))
        // Taken off the queue: only what follows goes live.
        _ = m.clientData(Self.text("next"))
        guard case .start(let queued) = m.goLive() else {
            Issue.record("not started")
            return
        }
        #expect(queued.count == 1)
    }

    @Test func binaryFirstIsRefusedAndDropped() {
        var m = Self.machine()
        #expect(m.clientData(Self.frame(.binary, [1, 2], fin: false)) == .captured(handshake: .binary, pauseReading: false))
        #expect(m.clientData(Self.frame(.continuation, [3])) == .captured(handshake: nil, pauseReading: false))
        guard case .start(let queued) = m.goLive() else { return #expect(Bool(false)) }
        #expect(queued.count == 1)  // the continuation came after the handshake was settled
    }

    @Test func handshakeOverTheByteCapIsTooLargeBeforeItEnds() {
        var m = Self.machine(handshake: 8)
        #expect(m.clientData(Self.text("12345", fin: false)) == .captured(handshake: nil, pauseReading: false))
        let more = WebSocketFrame(fin: false, opcode: .continuation, data: ByteBuffer(string: "6789"))
        #expect(m.clientData(more) == .captured(handshake: .tooLarge, pauseReading: false))
    }

    @Test func handshakeInTooManyFragmentsIsTooLarge() {
        var m = Self.machine()
        _ = m.clientData(Self.text("", fin: false))
        var last: Machine.ClientDataAction = .drop
        for _ in 0..<Machine.maxHandshakeFragments {
            last = m.clientData(WebSocketFrame(fin: false, opcode: .continuation, data: ByteBuffer()))
        }
        #expect(last == .captured(handshake: .tooLarge, pauseReading: false))
    }

    @Test func handshakeThatIsNotUTF8IsReported() {
        var m = Self.machine()
        #expect(m.clientData(Self.frame(.text, [0x7B, 0xC3])) == .captured(handshake: .invalidUTF8, pauseReading: false))
    }

    @Test func theHandshakeSettlesOnce() {
        var m = Self.machine()
        #expect(m.clientClosed(code: .normalClosure, reason: "bye") == .init(settleHandshake: true, forwardClose: false))
        #expect(m.clientData(Self.text("{}")) == .captured(handshake: nil, pauseReading: false))
        #expect(!Self.step(&m) { $0.handshakeDeadline() })
        #expect(m.finalize().settleHandshake == false)
    }

    @Test func theDeadlineSettlesAPendingHandshake() {
        var m = Self.machine()
        _ = m.clientData(Self.text("{", fin: false))
        #expect(Self.step(&m) { $0.handshakeDeadline() })
        #expect(m.clientClosed(code: nil, reason: nil).settleHandshake == false)
    }

    // ---- capture bounds -------------------------------------------------------------------------

    @Test func readingPausesOnceWhenTheQueueIsFullAndResumesWhenLive() {
        var m = Self.machine(queue: 200)
        _ = m.clientData(Self.text("{}"))
        // Empty frames count their overhead: 64 each.
        #expect(m.clientData(Self.frame(.binary, [])) == .captured(handshake: nil, pauseReading: false))
        #expect(m.clientData(Self.frame(.binary, [])) == .captured(handshake: nil, pauseReading: false))
        #expect(m.clientData(Self.frame(.binary, [])) == .captured(handshake: nil, pauseReading: false))
        #expect(m.clientData(Self.frame(.binary, [])) == .captured(handshake: nil, pauseReading: true))
        #expect(m.clientData(Self.frame(.binary, [])) == .captured(handshake: nil, pauseReading: false))
        guard case .start(let queued) = m.goLive() else { return #expect(Bool(false)) }
        #expect(queued.count == 5)
        #expect(Self.step(&m) { $0.workerWritable() })
        #expect(!Self.step(&m) { $0.workerWritable() })
    }

    // ---- live -----------------------------------------------------------------------------------

    @Test func liveFramesAreForwardedAndInvalidTextFailsOnce() {
        var m = Self.machine()
        Self.live(&m)
        #expect(m.clientData(Self.text("héllo", masked: true)) == .forward)
        #expect(m.clientData(Self.frame(.binary, [0xFF])) == .forward)  // binary is not checked
        // A character split across frames is fine; a truncated one at the end is not.
        #expect(m.clientData(Self.frame(.text, [0xC3], fin: false)) == .forward)
        #expect(m.clientData(Self.frame(.continuation, [0xA9])) == .forward)
        #expect(m.clientData(Self.frame(.text, [0xC3])) == .fail(report: true))
        #expect(m.clientFailed)
        #expect(m.clientData(Self.text("ok")) == .drop)
        #expect(m.workerData(opcode: .text, fin: true) == .drop)
        #expect(m.finalize().settleViolation == false)
    }

    @Test func closesArePassedOnOnlyWhenLive() {
        var m = Self.machine()
        _ = m.clientData(Self.text("{}"))
        #expect(m.clientClosed(code: .goingAway, reason: "r") == .init(settleHandshake: false, forwardClose: false))
        #expect(m.clientClose?.code == .goingAway)
        _ = m.goLive()
        #expect(m.clientClosed(code: nil, reason: nil).forwardClose)
    }

    @Test func goingLiveTwiceOrAfterTheEndIsRejected() {
        var m = Self.machine()
        Self.live(&m)
        guard case .reject = m.goLive() else { return #expect(Bool(false)) }
        var ended = Self.machine()
        _ = ended.finalize()
        guard case .reject = ended.goLive() else { return #expect(Bool(false)) }
    }

    @Test func backPressureTogglesOnce() {
        var m = Self.machine()
        #expect(!Self.step(&m) { $0.workerBlocked() })  // not live: the capture has its own bound
        Self.live(&m)
        #expect(Self.step(&m) { $0.workerBlocked() })
        #expect(!Self.step(&m) { $0.workerBlocked() })
        #expect(Self.step(&m) { $0.workerWritable() })
        #expect(!Self.step(&m) { $0.workerWritable() })
    }

    // ---- worker → client ------------------------------------------------------------------------

    @Test func eventsWaitForTheEndOfAFragmentedMessage() {
        var m = Self.machine()
        Self.live(&m)
        let event = ByteBuffer(string: "{\"type\":\"status\"}")
        #expect(m.inject(event) == event)
        #expect(m.workerData(opcode: .text, fin: false) == .forward(track: true, thenInject: []))
        #expect(m.inject(event) == nil)
        #expect(m.workerData(opcode: .continuation, fin: false) == .forward(track: false, thenInject: []))
        #expect(m.workerData(opcode: .continuation, fin: true) == .forward(track: false, thenInject: [event]))
        #expect(m.inject(event) == event)
        #expect(m.workerData(opcode: .binary, fin: true) == .forward(track: false, thenInject: []))
    }

    @Test func anUnansweredPingMeansTheWorkerIsLost() {
        var m = Self.machine()
        #expect(m.pingTick() == .skip)
        Self.live(&m)
        #expect(m.pingTick() == .sendPing)
        m.workerPong()
        #expect(m.pingTick() == .sendPing)
        #expect(m.pingTick() == .workerLost)
        #expect(Self.step(&m) { $0.workerEnded() })
        #expect(m.pingTick() == .stop)
    }

    @Test func theEndIsReportedOnceAndFinalizeSettlesTheRest() {
        var m = Self.machine()
        Self.live(&m)
        #expect(Self.step(&m) { $0.workerEnded() })
        #expect(!Self.step(&m) { $0.workerEnded() })
        #expect(m.finalize() == .init(settleHandshake: false, settleEnd: false, settleViolation: true))
        #expect(m.finalize() == .init(settleHandshake: false, settleEnd: false, settleViolation: false))
        #expect(m.clientData(Self.text("late")) == .drop)
    }

    @Test func finalizeBeforeAnythingSettlesEverything() {
        var m = Self.machine()
        #expect(m.finalize() == .init(settleHandshake: true, settleEnd: true, settleViolation: true))
    }
}
