import Foundation

/// A tokens file in a folder of its own, for the tests that edit, replace and delete it.
struct TemporaryTokensFile {
    let directory: URL
    let path: String

    init(_ prefix: String, contents: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("tokens").path
        try write(contents)
    }

    func write(_ contents: String) throws { try contents.write(toFile: path, atomically: true, encoding: .utf8) }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
