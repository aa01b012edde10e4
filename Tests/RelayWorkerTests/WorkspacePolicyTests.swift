import Foundation
import Testing

@testable import RelayWorkerCore

@Suite struct WorkspacePolicyTests {
    /// A real directory tree: root/inside, outside, and root/link → outside.
    func tree() throws -> (root: String, outside: String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("ws-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base + "/root/inside", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: base + "/root/link", withDestinationPath: base + "/outside")
        return (WorkspacePolicy.realPath(base + "/root")!, WorkspacePolicy.realPath(base + "/outside")!)
    }

    @Test func insideAndRootItselfAreAllowed() throws {
        let (root, _) = try tree()
        #expect(try WorkspacePolicy.resolve(root + "/inside", root: root, cwd: "/") == root + "/inside")
        #expect(try WorkspacePolicy.resolve("inside", root: root, cwd: "/") == root + "/inside")
        #expect(try WorkspacePolicy.resolve(root, root: root, cwd: "/") == root)
    }

    @Test func escapesAreRefused() throws {
        let (root, outside) = try tree()
        for folder in [outside, root + "/../outside", "../outside", root + "/link", "link", "/"] {
            #expect(throws: WorkspacePolicy.Failure.self) { try WorkspacePolicy.resolve(folder, root: root, cwd: "/") }
        }
    }

    @Test func missingFolderIsNotFound() throws {
        let (root, _) = try tree()
        #expect(throws: WorkspacePolicy.Failure.notFound(root + "/nope")) {
            try WorkspacePolicy.resolve("nope", root: root, cwd: "/")
        }
    }
}
