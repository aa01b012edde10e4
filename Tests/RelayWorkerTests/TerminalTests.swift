import NIOCore
import Testing

@testable import RelayWorkerCore

@Suite struct TerminalTests {
    @Test func stripsEscapesKeepsLinks() {
        #expect(TerminalText.clean("\u{1B}[31mred\u{1B}[0m") == "red")
        #expect(TerminalText.clean("a\u{1B}[3Cb") == "a   b")
        #expect(TerminalText.clean("\u{1B}]8;;http://x.y\u{07}link\u{1B}]8;;\u{07}") == "http://x.ylink")
        #expect(TerminalText.clean("one\r\ntwo\rthree\r\r\n") == "one\ntwo\nthree\n")
        #expect(TerminalText.clean("\u{1B}]0;title\u{07}x\u{07}\u{7F}") == "x")
    }

    @Test func classification() {
        #expect(PTYClassifier.classify("Context: 85% used").contextPct == 85)
        #expect(PTYClassifier.classify("Too Many Requests").type == "quota_warning")
        #expect(PTYClassifier.classify("> Read(foo.py)").tool == "Read")
        #expect(PTYClassifier.classify("--- a/x").type == "file_diff")
        #expect(PTYClassifier.classify("Let me look").type == "reasoning")
        #expect(PTYClassifier.classify("plain").type == "stdout")
    }

    @Test func utf8SplitAcrossChunksSurvives() {
        var tail = UTF8Tail()
        let bytes = Array("héllo €".utf8)
        let cut = 2  // inside "é"
        let a = tail.decode(ByteBuffer(bytes: bytes[..<cut]))
        let b = tail.decode(ByteBuffer(bytes: bytes[cut...]))
        #expect(a + b == "héllo €")
    }

    @Test func lineSplitterCapsRunawayLines() {
        var splitter = LineSplitter(maxLineBytes: 8)
        #expect(splitter.push(ByteBuffer(string: "ab\r\ncd")) == [Array("ab".utf8)])
        #expect(splitter.push(ByteBuffer(string: "0123456789")) == [])
        let overflowed = splitter.takeOverflow()
        #expect(overflowed)
        #expect(splitter.push(ByteBuffer(string: "xx\nok\n")) == [Array("ok".utf8)])
        #expect(splitter.finish() == nil)
    }
}
