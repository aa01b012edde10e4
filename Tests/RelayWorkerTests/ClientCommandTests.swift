import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// Every client message shape of docs/protocol.md ("Client messages"), parsed once into a
/// `ClientCommand`, and every bad one refused with its `error` text.
@Suite struct ClientCommandTests {
    func command(_ text: String) throws -> ClientCommand {
        guard case .success(let command?) = ClientCommand.parse(text) else {
            throw Failure(text: text)
        }
        return command
    }

    struct Failure: Error { let text: String }

    func refusal(_ text: String) -> String? {
        if case .failure(let invalid) = ClientCommand.parse(text) { return invalid.message }
        return nil
    }

    func isDropped(_ text: String) -> Bool {
        if case .success(nil) = ClientCommand.parse(text) { return true }
        return false
    }

    // MARK: prompts

    @Test func plainTextIsAPrompt() throws {
        let c = try command("hello")
        guard case .prompt = c.action else { throw Failure(text: "hello") }
        #expect(c.prompt.text == "hello")
        #expect(c.ack?.text == "hello")
        // Anything that does not start like an object is text too, as in the reference.
        #expect(try command("[1, 2]").prompt.text == "[1, 2]")
        #expect(try command("[1e400").prompt.text == "[1e400")
        #expect(try command("  /cost ").prompt.trimmedText == "/cost")
    }

    @Test func userMessageIsAPrompt() throws {
        let c = try command(#"{"type":"user_message","content":"x","uuid":"u1"}"#)
        guard case .prompt = c.action else { throw Failure(text: "user_message") }
        #expect(c.prompt.body == "x" && c.prompt.uuid == "u1")
        #expect(c.ack?.text == "user_message")
        #expect(try command(#"{"content":"x"}"#).ack?.text == nil)
        #expect(try command(#"{"content":"x"}"#).ack != nil)
    }

    @Test func unknownTypesArePromptsAndAckedWithTheirType() throws {
        let c = try command(#"{"type":"weird","text":"t"}"#)
        guard case .prompt = c.action else { throw Failure(text: "weird") }
        #expect(c.ack?.text == "t")
        #expect(try command(#"{"type":5}"#).ack?.text == .int(5))
        let typeNull = try command(#"{"type":null}"#)
        #expect(typeNull.ack != nil && typeNull.ack?.text == nil)
    }

    @Test func emptyMessagesAreDropped() {
        #expect(isDropped(#"{"text":""}"#))
        #expect(isDropped("{}"))
        #expect(isDropped(#"{"text":null,"other":1}"#))
        #expect(!isDropped(#"{"type":"interrupt"}"#))
        #expect(!isDropped(#"{"content":null}"#))
    }

    // MARK: typed messages

    @Test func interruptAndPassiveMessagesAreNotAcked() throws {
        let interrupt = try command(#"{"type":"interrupt"}"#)
        guard case .interrupt = interrupt.action else { throw Failure(text: "interrupt") }
        #expect(interrupt.ack == nil)
        for type in ["ping", "pong", "control_request"] {
            let c = try command(#"{"type":"\#(type)"}"#)
            guard case .passive(let name) = c.action, name == type else { throw Failure(text: type) }
            #expect(c.ack == nil)
        }
    }

    @Test func permissionAnswers() throws {
        for (text, id, verdict) in [
            (#"{"type":"permission_response","request_id":0,"behavior":"allow"}"#, "0", PermissionVerdict.allow),
            (#"{"type":"permission_response","request_id":"r","decision":"allow_always"}"#, "r", .allowForSession),
            (#"{"type":"permission_response","id":7}"#, "7", .deny),
            (#"{"type":"permission_response","request_id":-0.0,"allow":true}"#, "0", .allow),
            (#"{"type":"permission_response","request_id":"x","decision":"abort"}"#, "x", .cancel),
        ] {
            let c = try command(text)
            guard case .permissionAnswer(let answer) = c.action else { throw Failure(text: text) }
            #expect(answer.id == id && answer.verdict == verdict, "\(text)")
            #expect(c.ack == nil)
        }
        let c = try command(#"{"type":"permission_response","request_id":"r","optionId":"o","updatedInput":{"a":1}}"#)
        guard case .permissionAnswer(let answer) = c.action else { throw Failure(text: "fields") }
        #expect(answer.fields["optionId"] == "o" && answer.fields["updatedInput"] == ["a": 1])
    }

    @Test func permissionAnswersWithoutAUsableIdAreRefused() {
        let needsID = "permission_response needs a 'request_id': a string or an integer"
        for bad in ["", #","request_id":"""#, #","request_id":1.5"#, #","request_id":null"#, #","request_id":true"#,
                    #","request_id":[]"#, #","request_id":{}"#, #","request_id":1e300"#, #","request_id":18446744073709551616"#] {
            #expect(refusal(#"{"type":"permission_response"\#(bad)}"#) == needsID, "\(bad)")
        }
    }

    @Test func settings() throws {
        guard case .setModel(let model) = try command(#"{"type":"set_model","model":"opus"}"#).action else {
            throw Failure(text: "set_model")
        }
        #expect(model == "opus")
        guard case .setModel(let missing) = try command(#"{"type":"set_model"}"#).action else { throw Failure(text: "set_model") }
        #expect(missing == nil)

        let mode = try command(#"{"type":"set_permission_mode","mode":"plan"}"#)
        guard case .setPermissionMode(let change, let approval) = mode.action else { throw Failure(text: "mode") }
        #expect(change.mode == "plan" && !approval && change.approvalPolicy == "plan" && mode.ack == nil)
        let claudeOnly = try command(#"{"type":"set_permission_mode","permission_mode":"plan"}"#)
        guard case .setPermissionMode(let named, _) = claudeOnly.action else { throw Failure(text: "permission_mode") }
        #expect(named.mode == "plan" && named.approvalPolicy == nil)
        // A null `mode` hides `permission_mode` from Claude's reading; Codex skips it for the next field.
        let nullMode = try command(#"{"type":"set_permission_mode","mode":null,"permission_mode":"plan","approvalPolicy":"never"}"#)
        guard case .setPermissionMode(let nulled, _) = nullMode.action else { throw Failure(text: "null mode") }
        #expect(nulled.mode == "" && nulled.approvalPolicy == "never")

        let policy = try command(#"{"type":"set_approval_policy","approval_policy":"never"}"#)
        guard case .setPermissionMode(let p, true) = policy.action else { throw Failure(text: "policy") }
        #expect(p.approvalPolicy == "never" && policy.ack?.text == "set_approval_policy")
    }

    @Test func claudeUpdateRawRequestAndControlResponse() throws {
        let update = try command(#"{"type":"claude_update"}"#)
        guard case .claudeUpdate = update.action else { throw Failure(text: "update") }
        #expect(update.ack == nil)

        let raw = try command(#"{"type":"raw_request","method":"m","params":{"a":1}}"#)
        guard case .rawRequest(let method, let params) = raw.action else { throw Failure(text: "raw") }
        #expect(method == "m" && params == ["a": 1] && raw.ack?.text == "raw_request")
        for bad in [#""method":"""#, #""method":5"#, #""x":1"#] {
            guard case .rawRequest(nil, .null) = try command(#"{"type":"raw_request",\#(bad)}"#).action else {
                throw Failure(text: bad)
            }
        }

        let control = try command(#"{"type":"control_response","request_id":3,"response":5}"#)
        guard case .controlResponse(let id, let message) = control.action else { throw Failure(text: "control") }
        #expect(id == "3" && message["response"] == 5 && control.ack == nil)
        guard case .controlResponse(nil, _) = try command(#"{"type":"control_response"}"#).action else {
            throw Failure(text: "control without id")
        }
    }

    // MARK: bad frames

    @Test func brokenObjectsAreRefusedNotPrompts() {
        for text in ["{broken", #" {"type":"permission_response","request_id":18446744073709551617}"#, "{\"a\":1", "\n\t{"] {
            #expect(refusal(text)?.hasPrefix("Invalid JSON message: ") == true, "\(text)")
        }
        #expect(
            refusal(#"{"request_id":18446744073709551617}"#)
                == "Invalid JSON message: Integer out of range (not exactly representable) at offset 14")
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(refusal("{\"a\":" + deep + "}") != nil)
    }

    // MARK: the prompt readings

    @Test func trimmedText() {
        func text(_ s: String) -> String { Prompt(ClientMessage(frame: s).object).trimmedText }
        #expect(text(#"{"content":[{"type":"text","text":" a "},{"type":"input_text","text":"b"}]}"#) == "a \nb")
        #expect(text(#"{"content":[{"type":"image","source":{}}]}"#) == "[image]")
        #expect(text(#"{"content":null,"text":"hi"}"#) == "hi")
        #expect(text(#"{"content":"","text":"hi"}"#) == "")
        #expect(text(#"{"text":5}"#) == "5")
        #expect(text(#"{"type":"ping"}"#) == "")
    }

    @Test func joinedText() {
        func text(_ s: String) -> String { Prompt(ClientMessage(frame: s).object).joinedText }
        #expect(text(#"{"content":[{"type":"text","text":"a"},{"type":"image"},{"type":"input_text","text":"b"}]}"#) == "a\nb")
        #expect(text(#"{"type":"set_model","model":"x"}"#) == "")
        #expect(text(#"{"content":[{"type":"text","text":""},{"type":"text","text":7}]}"#) == "7")
        #expect(text(" x ") == " x ")
    }

    @Test func textAndImages() {
        func read(_ s: String) -> (text: String, images: [JSON]) { Prompt(ClientMessage(frame: s).object).textAndImages }
        let (text, images) = read(
            #"{"type":"user_message","content":[{"type":"text","text":"a"},{"type":"image","source":{"media_type":"image/jpeg","data":"QQ=="}},{"type":"text","text":"b"},{"type":"input_image","image_url":"https://x/i.png"},{"type":"image","url":"u"}]}"#)
        #expect(text == "a\nb")
        #expect(
            images == [
                ["type": "image", "url": "data:image/jpeg;base64,QQ=="], ["type": "image", "url": "https://x/i.png"],
                ["type": "image", "url": "u"],
            ])
        #expect(read(#"{"text":5}"#).text == "5")
        // `text` first for Codex, unlike the other readings.
        #expect(read(#"{"text":"a","content":"b"}"#).text == "a")
        #expect(read(#"{"content":{"k":1}}"#).text == #"{"k":1}"#)
    }

    @Test func contentBlocks() {
        func blocks(_ s: String) -> [JSON] { Prompt(ClientMessage(frame: s).object).contentBlocks }
        #expect(blocks("hello") == [["type": "text", "text": "hello"]])
        #expect(blocks(#"{"type":"ping"}"#).isEmpty)
        #expect(blocks(#"{"content":"","images":[{"data":"x"}]}"#).isEmpty)
        #expect(
            blocks(
                #"{"content":[{"type":"text","text":"a"},{"type":"inline_data","mime_type":"image/gif","data":"R0"},{"type":"other"},3],"images":[{"base64":"QQ"}]}"#)
                == [
                    ["type": "text", "text": "a"], ["type": "image", "mimeType": "image/gif", "data": "R0"],
                    ["type": "text", "text": #"{"type":"other"}"#], ["type": "text", "text": "3"],
                    ["type": "image", "mimeType": "image/png", "data": "QQ"],
                ])
    }
}
