import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// The JSON-RPC child shared by the Codex and Gemini runtimes: the bytes it writes in each dialect,
/// how it sorts the lines a child prints, call/answer matching, timeouts and the child's exit.
@Suite struct JSONRPCChildTests {
    /// A `JSONRPCChild` on a fake child: what it writes comes out of `written`, one line at a time;
    /// what the child "prints" goes in through `rpc.route`.
    struct Fake {
        let rpc: JSONRPCChild
        let written: AsyncStream<String>

        init(_ dialect: JSONRPCDialect) async {
            rpc = JSONRPCChild(dialect, wording: .init(tool: "fake", notRunning: "not running", exited: "exited", waitingFor: "fake"))
            let (written, sink) = AsyncStream<String>.makeStream()
            self.written = written
            await rpc.attach { bytes in sink.yield(String(decoding: bytes, as: UTF8.self)) }
        }

        /// The next `n` lines written.
        func next(_ n: Int) async -> [String] {
            var out: [String] = []
            for await line in written {
                out.append(line)
                if out.count == n { break }
            }
            return out
        }

        func route(_ line: String) -> JSONRPCIncoming? { rpc.route(Array(line.utf8)) }
    }

    /// A one-word summary of how a line was sorted.
    func kind(_ incoming: JSONRPCIncoming?) -> String {
        switch incoming {
        case nil: "none"
        case .request(let id, let method, let params, _, _)?: "request \(id.encodedString()) \(method) \(params.encodedString())"
        case .notification(let method, let params, _, _)?: "notification \(method) \(params.encodedString())"
        case .other?: "other"
        case .text(let line)?: "text \(String(decoding: line, as: UTF8.self))"
        }
    }

    func message(of error: any Error) -> String { (error as? RPCError)?.description ?? "not an RPCError: \(error)" }

    @Test func codexBytesOnTheWire() async throws {
        let fake = await Fake(.codexAppServer)
        async let answer = fake.rpc.call("initialize", ["a": 1], timeout: .seconds(30))
        #expect(await fake.next(1) == [#"{"id":1,"method":"initialize","params":{"a":1}}"# + "\n"])
        #expect(fake.route(#"{"id":1,"result":{"ok":true}}"#) == nil)
        #expect(try await answer == ["id": 1, "result": ["ok": true]])
        try await fake.rpc.notify("initialized")
        try await fake.rpc.notify("n", ["x": .null])
        try await fake.rpc.respond(to: "r-1", ["decision": "accept"])
        #expect(
            await fake.next(3) == [
                #"{"method":"initialized"}"# + "\n", #"{"method":"n","params":{"x":null}}"# + "\n",
                #"{"id":"r-1","result":{"decision":"accept"}}"# + "\n",
            ])
    }

    @Test func acpBytesOnTheWire() async throws {
        let fake = await Fake(.acp)
        async let answer = fake.rpc.call("session/new", ["cwd": "/w"], timeout: .seconds(30))
        #expect(await fake.next(1) == [#"{"jsonrpc":"2.0","method":"session/new","params":{"cwd":"/w"},"id":1}"# + "\n"])
        // ACP hands the whole answer back, an error answer included.
        #expect(fake.route(#"{"jsonrpc":"2.0","id":1,"error":{"code":-1}}"#) == nil)
        #expect(try await answer == ["jsonrpc": "2.0", "id": 1, "error": ["code": -1]])
        try await fake.rpc.notify("session/cancel", ["sessionId": "s"])
        try await fake.rpc.respond(to: 7, ["outcome": ["outcome": "cancelled"]])
        try await fake.rpc.respond(to: 8, errorCode: -32601, message: "Method not supported by this client: fs/x")
        #expect(
            await fake.next(3) == [
                #"{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"s"}}"# + "\n",
                #"{"jsonrpc":"2.0","id":7,"result":{"outcome":{"outcome":"cancelled"}}}"# + "\n",
                #"{"jsonrpc":"2.0","id":8,"error":{"code":-32601,"message":"Method not supported by this client: fs/x"}}"# + "\n",
            ])
    }

    @Test func answersMeetTheirCallsInAnyOrder() async throws {
        let fake = await Fake(.codexAppServer)
        async let a = fake.rpc.call("a", [:], timeout: .seconds(30))
        async let b = fake.rpc.call("b", [:], timeout: .seconds(30))
        // Whichever was written first got id 1: answer each by the id it was written with.
        var ids: [String: Int64] = [:]
        for line in await fake.next(2) {
            let request = try JSON.parse(line)
            ids[request["method"]!.stringValue!] = request["id"]!.intValue!
        }
        _ = fake.route(#"{"id":\#(ids["b"]!),"result":"for b"}"#)
        // The same id as a string meets the call too (codex and the reference accept "2" for 2).
        _ = fake.route(#"{"id":"\#(ids["a"]!)","result":"for a"}"#)
        #expect(try await a["result"] == "for a")
        #expect(try await b["result"] == "for b")
    }

    @Test func answersToUnknownIdsAreDropped() async throws {
        let fake = await Fake(.codexAppServer)
        async let pending = fake.rpc.call("m", [:], timeout: .seconds(30))
        _ = await fake.next(1)
        for stray in [
            #"{"id":99,"result":{}}"#, #"{"id":"nope","error":{"code":1}}"#, #"{"id":[1],"result":1}"#,
            #"{"id":1.5,"result":1}"#,
        ] {
            #expect(kind(fake.route(stray)) == "none", "\(stray)")
        }
        _ = fake.route(#"{"id":1,"result":"mine"}"#)
        #expect(try await pending["result"] == "mine")
        // A second answer to the same id finds nothing pending.
        #expect(kind(fake.route(#"{"id":1,"result":"again"}"#)) == "none")
    }

    @Test func aCallTimesOutAndItsLateAnswerIsDropped() async throws {
        let fake = await Fake(.codexAppServer)
        do {
            _ = try await fake.rpc.call("slow", [:], timeout: .milliseconds(20))
            Issue.record("expected a timeout")
        } catch {
            #expect(message(of: error) == "Timed out waiting for fake slow")
        }
        #expect(kind(fake.route(#"{"id":1,"result":"late"}"#)) == "none")
        // The child is still usable.
        async let next = fake.rpc.call("fast", [:], timeout: .seconds(30))
        #expect(await fake.next(2).last == #"{"id":2,"method":"fast","params":{}}"# + "\n")
        _ = fake.route(#"{"id":2,"result":"ok"}"#)
        #expect(try await next["result"] == "ok")
    }

    @Test func theChildExitingFailsPendingAndLaterCalls() async throws {
        let fake = await Fake(.acp)
        async let pending = fake.rpc.call("session/prompt", [:], timeout: .seconds(30))
        _ = await fake.next(1)
        fake.rpc.stdoutEnded()
        do {
            _ = try await pending
            Issue.record("expected a failure")
        } catch {
            #expect(message(of: error) == "exited")
        }
        do {
            _ = try await fake.rpc.call("later", [:], timeout: .seconds(30))
            Issue.record("expected a failure")
        } catch {
            #expect(message(of: error) == "exited")
        }
    }

    @Test func withoutAChildNothingIsWritten() async throws {
        let rpc = JSONRPCChild(.acp, wording: .init(tool: "fake", notRunning: "not running", exited: "exited", waitingFor: "fake"))
        for attempt in [
            { _ = try await rpc.call("m", [:], timeout: .seconds(30)) }, { try await rpc.notify("n") },
            { try await rpc.respond(to: 1, .null) },
        ] as [@Sendable () async throws -> Void] {
            do {
                try await attempt()
                Issue.record("expected a failure")
            } catch {
                #expect(message(of: error) == "not running")
            }
        }
        #expect(await !rpc.isLive)
    }

    @Test func codexLines() async {
        let fake = await Fake(.codexAppServer)
        #expect(kind(fake.route("")) == "none")
        #expect(kind(fake.route("   ")) == "text    ")
        #expect(kind(fake.route("Reading config…")) == "text Reading config…")
        #expect(kind(fake.route("[1,2]")) == "text [1,2]")
        #expect(kind(fake.route(#"{"broken":"#)) == #"text {"broken":"#)
        #expect(kind(fake.route(#"{"id":0,"method":"item/tool/call","params":{"a":1}}"#)) == #"request 0 item/tool/call {"a":1}"#)
        // Null id: a notification; falsy params become {}.
        #expect(kind(fake.route(#"{"id":null,"method":"turn/started","params":null}"#)) == "notification turn/started {}")
        #expect(kind(fake.route(#"{"method":"turn/started","params":[]}"#)) == "notification turn/started {}")
        // An empty or non-string method is no method: with an id and a result it is an answer.
        #expect(kind(fake.route(#"{"id":5,"method":"","result":1}"#)) == "none")
        #expect(kind(fake.route(#"{"method":5}"#)) == "other")
        #expect(kind(fake.route(#"{"id":5}"#)) == "other")
        #expect(kind(fake.route(#"{"type":"event"}"#)) == "other")
    }

    @Test func acpLines() async {
        let fake = await Fake(.acp)
        #expect(kind(fake.route("")) == "none")
        #expect(kind(fake.route(" ")) == "text  ")
        #expect(kind(fake.route("gemini: warming up")) == "text gemini: warming up")
        #expect(kind(fake.route("42")) == "text 42")
        #expect(
            kind(fake.route(#"{"jsonrpc":"2.0","id":3,"method":"session/request_permission","params":{"options":[]}}"#))
                == #"request 3 session/request_permission {"options":[]}"#)
        #expect(kind(fake.route(#"{"method":"session/update","params":{"update":{}}}"#)) == #"notification session/update {"update":{}}"#)
        // Any `method` member makes a call (non-string: ""), params default to {} only when missing.
        #expect(kind(fake.route(#"{"method":5,"id":null}"#)) == "notification  {}")
        #expect(kind(fake.route(#"{"method":"x","params":null}"#)) == "notification x null")
        #expect(kind(fake.route(#"{"update":{"sessionUpdate":"x"},"id":4}"#)) == "other")
        #expect(kind(fake.route(#"{"id":4}"#)) == "none")
        #expect(kind(fake.route(#"{"result":{}}"#)) == "other")
    }

    @Test func backgroundWorkRunsInRunAndIsCancelledWhenItEnds() async throws {
        let rpc = JSONRPCChild(.acp, wording: .init(tool: "fake", notRunning: "not running", exited: "exited", waitingFor: "fake"))
        let (events, event) = AsyncStream<String>.makeStream()
        let result = try await rpc.run {
            rpc.background { event.yield("ran") }
            rpc.background {
                // Ends only when cancelled: `run` must not return before it did.
                try? await Task.sleep(for: .seconds(3600))
                event.yield(Task.isCancelled ? "cancelled" : "slept")
            }
            var iterator = events.makeAsyncIterator()
            return await iterator.next()
        }
        #expect(result == "ran")
        event.finish()
        var rest: [String] = []
        for await e in events { rest.append(e) }
        #expect(rest == ["cancelled"])
    }
}

extension JSONRPCChildTests {
    @Test func readiness() async {
        let fake = await Fake(.acp)
        let rpc = fake.rpc
        // Starting: a waiter waits for the start sequence.
        async let first = rpc.awaitLive()
        #expect(await !rpc.isLive)
        await rpc.becomeLive()
        #expect(await first)
        #expect(await rpc.isLive)
        #expect(await rpc.awaitLive())
        #expect(await !rpc.restart())
        // Down: no waiting; restart() starts again, and a failed start is kept for the waiters.
        await rpc.detach(failure: nil)
        #expect(await !rpc.isLive)
        #expect(await !rpc.awaitLive())
        #expect(await rpc.startFailure == nil)
        #expect(await rpc.restart())
        async let second = rpc.awaitLive()
        await rpc.attach { _ in }
        await rpc.detach(failure: "Command not found: fake")
        #expect(await !second)
        #expect(await rpc.startFailure == "Command not found: fake")
        #expect(await rpc.restart())
        #expect(await rpc.startFailure == nil)
        // Stopped: waiters are released and nothing becomes live again.
        async let third = rpc.awaitLive()
        await rpc.stop()
        #expect(await !third)
        await rpc.becomeLive()
        #expect(await !rpc.restart())
        #expect(await !rpc.awaitLive())
    }
}
