import Logging
import NIOWebSocket
import RelayProtocol

/// One socket attached to a session: it receives the session's events after its cursor (replayed from
/// the log, then live) and sends client messages to the agent. Leaving only detaches.
enum Attachment {
    static func run(_ session: LiveSession, reader: MessageReader, socket: ClientSocket, after cursor: Int) async {
        session.clientAttached()
        defer { session.clientDetached() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await follow(session.log, from: cursor, socket: socket) }
            group.addTask { await pump(reader, session: session, socket: socket) }
            group.addTask {
                await socket.watchSlowClient()
                await socket.close(.policyViolation, reason: "client too slow")
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Writes every event after `cursor` in order, at this client's pace. After the session's last event
    /// (`session_end`) the socket is closed, as a session's end always did.
    static func follow(_ log: SessionLog, from cursor: Int, socket: ClientSocket) async {
        var cursor = cursor
        while !Task.isCancelled {
            switch log.read(after: cursor) {
            case .events(let entries):
                for e in entries {
                    guard await socket.write(e.bytes) else { return }
                    cursor = e.seq
                }
            case .gap(let first):
                guard await socket.write(replayGap(sessionID: log.sessionID, after: cursor, first: first)) else { return }
                cursor = first - 1
            case .waiting:
                await log.wait(after: cursor)
            case .ended:
                await socket.close(.normalClosure, reason: nil)
                return
            }
        }
    }

    /// Reads this client's messages. Bad frames get an `error` to this client only (not a session event);
    /// an oversize message (1009) or invalid UTF-8 (1007) closes this socket, not the session.
    static func pump(_ reader: MessageReader, session: LiveSession, socket: ClientSocket) async {
        while let next = await reader.next() {
            switch next {
            case .failure(let failure):
                await socket.error(failure.message, sessionID: session.id)
                await socket.close(failure.code, reason: failure.message)
                return
            case .success(.binary):
                await socket.error("Binary frames are not supported: send JSON text frames", sessionID: session.id)
            case .success(.text(let text)):
                if Self.isEndSession(text) {
                    session.requestEnd()
                    continue
                }
                switch ClientCommand.parse(text) {
                case .failure(let invalid):
                    await socket.error(invalid.message, sessionID: session.id)
                case .success(nil):
                    continue
                case .success(let command?):
                    if session.log.isEnded {
                        await socket.error("The session has ended", sessionID: session.id)
                    } else if !session.submit(command) {
                        await socket.error("Too many messages waiting for the agent; this one was dropped", sessionID: session.id)
                    }
                }
            }
        }
    }

    static func isEndSession(_ text: String) -> Bool {
        guard text.utf8.count < 4096, text.contains("end_session"), let o = try? JSON.parse(text) else { return false }
        return o["type"]?.stringValue == "end_session"
    }
}

extension Attachment {
    /// `{"type":"status","status":"replay_gap","after_seq":N,"first_seq":M}` (no `seq`: not a session event).
    static func replayGap(sessionID: String, after: Int, first: Int) -> [UInt8] {
        var o = JSONObject()
        o["type"] = "status"
        o["ts"] = .double(RelayEvent.now())
        o["session_id"] = .string(sessionID)
        o["status"] = "replay_gap"
        o["after_seq"] = .int(Int64(after))
        o["first_seq"] = .int(Int64(first))
        return JSON.object(o).encoded()
    }
}
