import ArgumentParser
import ChildProcess

#if canImport(Glibc)
import Glibc
#endif

/// Where the worker's access token comes from, and which address it may listen on without one.
enum WorkerTokenSource {
    /// Set by labctrl for each worker; scrubbed from the process at start.
    static let environmentVariable = "RELAY_WORKER_TOKEN"
    /// Tokens shorter than this are refused: a guessable token is no token.
    static let minimumLength = 16
    static let maximumFileBytes = 4096

    /// The token from `--token-stdin` (a pipe only the parent writes: a read consumes it, so a process
    /// that raced to read it first leaves this worker without one, and it does not start), `--token-file`,
    /// or the environment.
    static func load(file: String?, stdin: Bool, environmentVariable: String) throws -> String? {
        // Always scrub, even when another source wins, so no copy is left for the agents.
        let fromEnvironment = ProcessHardening.takeEnvironmentSecret(environmentVariable)
        let raw: String?
        if stdin {
            guard let line = readStdinLine() else { throw ValidationError("--token-stdin: no token on stdin") }
            raw = line
        } else if let file {
            raw = try read(file)
        } else {
            raw = fromEnvironment
        }
        guard let raw else { return nil }
        let token = raw.trimmingCharacters(in: " \t\r\n")
        guard token.utf8.count >= minimumLength else {
            throw ValidationError("the worker token must have at least \(minimumLength) characters")
        }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ValidationError("the worker token must be printable ASCII without spaces")
        }
        return token
    }

    /// Without a token the worker only listens on loopback, unless the operator says a proxy authenticates.
    static func listenHost(requested: String?, hasToken: Bool, insecureNoToken: Bool) throws -> String {
        guard let requested else { return hasToken || insecureNoToken ? "0.0.0.0" : "127.0.0.1" }
        if !hasToken, !insecureNoToken, !isLoopback(requested) {
            throw ValidationError(
                "--host \(requested) is not loopback: give a token (--token-file or \(environmentVariable)) or --insecure-no-token")
        }
        return requested
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// One line from fd 0, at most `maximumFileBytes`; stdin is then pointed at /dev/null so children
    /// never inherit the pipe.
    private static func readStdinLine() -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count <= maximumFileBytes {
            let n = Glibc.read(0, &byte, 1)
            if n < 0, errno == EINTR { continue }
            guard n == 1 else { break }
            if byte == 0x0A { break }
            bytes.append(byte)
        }
        let null = open("/dev/null", O_RDONLY)
        if null >= 0 {
            dup2(null, 0)
            close(null)
        }
        guard !bytes.isEmpty, bytes.count <= maximumFileBytes else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func read(_ path: String) throws -> String {
        guard let handle = fopen(path, "r") else {
            throw ValidationError("--token-file \(path) cannot be read")
        }
        defer { fclose(handle) }
        var bytes = [UInt8](repeating: 0, count: maximumFileBytes + 1)
        let n = fread(&bytes, 1, bytes.count, handle)
        guard n <= maximumFileBytes else { throw ValidationError("--token-file \(path) is larger than \(maximumFileBytes) bytes") }
        return String(decoding: bytes.prefix(n), as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let drop = Set(set.unicodeScalars)
        var scalars = Substring(self).unicodeScalars[...]
        while let f = scalars.first, drop.contains(f) { scalars.removeFirst() }
        while let l = scalars.last, drop.contains(l) { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
