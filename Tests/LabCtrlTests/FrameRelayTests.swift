import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import LabCtrlCore

/// The relay on a user channel, as the upgrade installs it (``FrameRelay/install(on:maxMessageBytes:maxHandshakeBytes:handshakeTimeout:metrics:)``).
@Suite struct FrameRelayTests {
    static func installed(timeout: TimeAmount = .seconds(10)) throws -> (EmbeddedChannel, FrameRelay) {
        let channel = EmbeddedChannel()
        let relay = try FrameRelay.install(
            on: channel, maxMessageBytes: 1 << 20, maxHandshakeBytes: 1 << 16, handshakeTimeout: timeout, metrics: LabMetrics())
        return (channel, relay)
    }

    static func settled<T>(_ future: EventLoopFuture<T>) -> T? {
        var value: T?
        future.whenSuccess { value = $0 }
        return value
    }

    @Test func theFirstFrameAfterTheUpgradeIsTheHandshakeAndDataStaysWithTheRelay() throws {
        let (channel, relay) = try Self.installed()
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "{\"tool\":\"claude\"}")))
        #expect(Self.settled(relay.handshake) == .text(Array("{\"tool\":\"claude\"}".utf8)))
        #expect(try channel.readInbound(as: WebSocketFrame.self) == nil)  // never reaches the framework
        // Control frames do: the framework answers pings and runs the close handshake.
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "p")))
        #expect(try channel.readInbound(as: WebSocketFrame.self)?.opcode == .ping)
        relay.finalize()
        _ = try channel.finish()
    }

    @Test func noHandshakeWithinTheDeadlineTimesOut() throws {
        let (channel, relay) = try Self.installed(timeout: .seconds(10))
        try channel.writeInbound(WebSocketFrame(fin: false, opcode: .text, data: ByteBuffer(string: "{")))
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(Self.settled(relay.handshake) == nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(Self.settled(relay.handshake) == .timedOut)
        relay.finalize()
        _ = try channel.finish()
    }

    @Test func aClientThatLeavesEndsTheHandshakeAndFinalizeSettlesTheRest() throws {
        let (channel, relay) = try Self.installed()
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(Self.settled(relay.handshake) == .closed)
        relay.finalize()
        channel.embeddedEventLoop.run()
        #expect(relay.isFinalized && relay.workerEnded)
        #expect(Self.settled(relay.violation.futureResult) == .some(nil))
        guard case .lost? = Self.settled(relay.upstreamEnd.futureResult) else {
            Issue.record("the worker end was not settled")
            return
        }
    }

    @Test func injectedEventsGoToTheClientAsTextFrames() throws {
        let (channel, relay) = try Self.installed()
        _ = relay.inject(Array("{\"type\":\"status\"}".utf8))
        channel.embeddedEventLoop.run()
        let frame = try channel.readOutbound(as: WebSocketFrame.self)
        #expect(frame?.opcode == .text && frame?.fin == true)
        #expect(frame.map { String(buffer: $0.data) } == "{\"type\":\"status\"}")
        relay.finalize()
        _ = try channel.finish()
    }
}
