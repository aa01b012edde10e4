import FuzzDriver
import HTTPTypes
import HummingbirdCore
import LabCtrlCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a request's credential comes from: the input is split at newlines into the request target,
/// an `Authorization` value and `Cookie` values. CredentialExtraction must never trap, and a token it
/// returns is never empty (a bearer token never padded with blanks).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCredentials(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let parts = text.split(separator: "\n", maxSplits: 8, omittingEmptySubsequences: false).map(String.init)
    let uri = URI(parts.first ?? "/")
    var headers = HTTPFields()
    if parts.count > 1 { headers.append(HTTPField(name: .authorization, value: parts[1])) }
    for cookie in parts.dropFirst(2) { headers.append(HTTPField(name: .cookie, value: cookie)) }

    if let bearer = CredentialExtraction.bearerToken(headers) {
        guard !bearer.isEmpty, bearer.first != " ", bearer.last != " " else { fatalError("bearer token empty or padded: '\(bearer)'") }
    }
    if let token = CredentialExtraction.token(headers: headers, uri: uri), token.isEmpty { fatalError("empty token returned") }
    return 0
}

@main enum FuzzCredentialsMain {
    static func main() { exit(lab_fuzz_driver_run(CommandLine.argc, CommandLine.unsafeArgv)) }
}
