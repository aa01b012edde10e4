import RelayProtocol
import Testing

@Suite struct JSONTests {
    @Test func parsesAndKeepsKeyOrder() throws {
        let value = try JSON.parse(#"{"z":1,"a":[true,false,null],"m":{"k":"v"},"d":-1.5e2,"s":"\u00e9\n\ud83d\ude00"}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m", "d", "s"])
        #expect(value["z"] == .int(1))
        #expect(value["a"] == [true, false, nil])
        #expect(value["d"]?.doubleValue == -150)
        #expect(value["s"]?.stringValue == "é\n😀")
        #expect(value.encodedString() == #"{"z":1,"a":[true,false,null],"m":{"k":"v"},"d":-150.0,"s":"é\n😀"}"#)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "01", "{\"a\":1} x", "\"\u{01}\""])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func errorMessagesNameTheProblem() {
        do {
            _ = try JSON.parse("not json")
            Issue.record("expected an error")
        } catch {
            #expect(error.message == "Expecting value")
        }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
    }

    @Test func encodesControlCharactersAndQuotes() throws {
        let s: JSON = .string("a\"b\\c\u{01}\t")
        #expect(s.encodedString() == #""a\"b\\c\u0001\t""#)
        #expect(try JSON.parse(s.encodedString()) == s)
    }
}

@Suite struct RelayEventTests {
    @Test func omitsTopLevelNilsKeepsNestedNulls() throws {
        var e = RelayEvent("permission_request", sessionID: "S1", text: "List", tool: "Bash", args: ["command": "ls"])
        e.metadata = ["blocked_path": nil]
        e.requestID = .string("perm-1")
        let decoded = try JSON.parse(e.encoded())
        #expect(decoded.objectValue?.keys == ["type", "ts", "session_id", "text", "tool", "args", "metadata", "request_id"])
        #expect(decoded["metadata"]?["blocked_path"] == .null)
        #expect(RelayEvent.decode(decoded) == e)
    }

    @Test func emptyTextWithoutPayloadIsFiltered() {
        #expect(RelayEvent("stdout", text: "").isEmpty)
        #expect(!RelayEvent("stdout", text: "", raw: ["x": 1]).isEmpty)
        #expect(!RelayEvent("status").isEmpty)
    }

    @Test func rawFragmentIsWrittenVerbatim() throws {
        let line = Array(#"{"type":"x","n":[1,2]}"#.utf8)
        let e = RelayEvent("stdout", raw: .fragment(line))
        #expect(try JSON.parse(e.encoded())["raw"] == ["type": "x", "n": [1, 2]])
    }
}
