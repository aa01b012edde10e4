import FuzzDriver
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// JSON.parse on arbitrary bytes must return or throw, never trap; whatever it accepts must survive
/// an encode → parse round trip unchanged, and encoding must be a fixed point after one round.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let value = try? JSON.parse(input) else { return 0 }
    let encoded = value.encoded()
    let again: JSON
    do {
        again = try JSON.parse(encoded)
    } catch {
        fatalError("encoded output does not parse: \(error) in \(String(decoding: encoded, as: UTF8.self))")
    }
    guard again == value else { fatalError("round trip changed the value: \(String(decoding: encoded, as: UTF8.self))") }
    guard again.encoded() == encoded else { fatalError("encoding is not stable: \(String(decoding: encoded, as: UTF8.self))") }
    // The accessors the worker and controller use on every frame.
    _ = value.objectValue?["type"]?.stringValue
    _ = value.intValue
    _ = value.idKey
    _ = value.textValue
    return 0
}

@main enum FuzzJSONMain {
    static func main() { exit(lab_fuzz_driver_run(CommandLine.argc, CommandLine.unsafeArgv)) }
}
