import FuzzDriver
import LabCtrlCore

#if canImport(Glibc)
import Glibc
#endif

/// `LAB_TOKENS_FILE` contents: TokensFile.parse must accept or refuse any text without trapping, and
/// what it accepts must keep its promises (valid user ids, tokens of 16+ bytes, no token twice).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokensFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let entries = try? TokensFile.parse(text) else { return 0 }
    var seen = Set<[UInt8]>()
    for entry in entries {
        guard UserID(entry.user.description) == entry.user else { fatalError("user id does not re-validate: \(entry.user)") }
        guard entry.token.count >= 16 else { fatalError("short token accepted") }
        // Tokens are visible ASCII: no blank (found by this target as a blank + combining mark that
        // Character-wise splitting kept inside a token: Fuzz/corpus/FuzzTokensFile/combining-blank.txt).
        guard entry.token.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { fatalError("token byte outside visible ASCII") }
        guard seen.insert(entry.token).inserted else { fatalError("duplicate token accepted") }
    }
    return 0
}

@main enum FuzzTokensFileMain {
    static func main() { exit(lab_fuzz_driver_run(CommandLine.argc, CommandLine.unsafeArgv)) }
}
