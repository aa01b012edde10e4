import Testing

@testable import LabCtrlCore

/// Values that parse as numbers but would trap when turned into nanoseconds or bytes are refused (exit 2),
/// not accepted.
@Suite struct ConfigBoundsTests {
    func refuses(_ name: String, _ value: String) -> Bool {
        do {
            _ = try LabConfig.fromEnvironment([name: value])
            return false
        } catch {
            return error.variable == name
        }
    }

    @Test func hugeDurationsSizesAndCountsAreRefused() {
        for name in ["LAB_IDLE_TIMEOUT_SECS", "LAB_MAX_TURN_SECS", "LAB_WS_PING_SECS", "LAB_CONTAINER_WS_TIMEOUT"] {
            #expect(refuses(name, "1e300"), "\(name)")
            #expect(refuses(name, "nan"), "\(name)")
            #expect(refuses(name, "-1"), "\(name)")
        }
        #expect(refuses("LAB_CONTAINER_CPUS", "1e300"))
        #expect(refuses("LAB_CONTAINER_MEMORY", "1e300g"))
        #expect(refuses("LAB_CONTAINER_MEMORY", "9e18"))
    }

    @Test func ordinaryValuesStillParse() throws {
        let c = try LabConfig.fromEnvironment(["LAB_IDLE_TIMEOUT_SECS": "315360000", "LAB_CONTAINER_MEMORY": "2g"])
        #expect(c.idleTimeout == 315_360_000)
        #expect(c.containerMemoryBytes == 2 << 30)
    }
}

@Suite struct TokensFileFormatTests {
    @Test func crlfLinesAndOddBlanks() throws {
        let crlf = try TokensFile.parse("alice alice-token-0123456789\r\nbob bob-token-0123456789ab\r\n")
        #expect(crlf.map(\.user.value) == ["alice", "bob"])
        #expect(crlf.first?.token == Array("alice-token-0123456789".utf8))
        // A blank followed by a combining mark does not glue two fields into one token.
        #expect(throws: ConfigError.self) { try TokensFile.parse("alice \u{301}aaaaaaaaaaaaaaaaaaaa\n") }
        #expect(throws: ConfigError.self) { try TokensFile.parse("alice tökentökentökentöken\n") }
    }
}
