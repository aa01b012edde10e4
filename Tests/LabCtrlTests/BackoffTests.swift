import Testing

@testable import LabCtrlCore

@Suite struct BackoffTests {
    @Test func delaysDoubleUpToTheCapAndStartOverAfterASuccess() {
        var b = Backoff(first: .milliseconds(500), cap: .seconds(10))
        let delays = (0..<8).map { _ in b.next() }
        #expect(delays == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10), .seconds(10)])
        b.reset()
        #expect(b.next() == .milliseconds(500))
    }
}
