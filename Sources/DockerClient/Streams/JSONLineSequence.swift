import Foundation

/// Decodes a chunked HTTP body of newline-separated JSON documents (events, pull/build progress) into
/// typed values, in the consumer's task. Ends when the engine ends the stream, or returns `nil` when the
/// consuming task is cancelled (the transfer is aborted then).
public struct JSONLineSequence<Element: Decodable & Sendable>: AsyncSequence, Sendable {
    let chunks: AsyncThrowingStream<[UInt8], any Error>
    let request: String

    public func makeAsyncIterator() -> Iterator {
        Iterator(chunks: chunks.makeAsyncIterator(), request: request)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var chunks: AsyncThrowingStream<[UInt8], any Error>.Iterator
        let request: String
        var buffer: [UInt8] = []
        var scanned = 0
        var finished = false
        let decoder = JSONDecoder()

        init(chunks: AsyncThrowingStream<[UInt8], any Error>.Iterator, request: String) {
            self.chunks = chunks
            self.request = request
        }

        public mutating func next() async throws -> Element? {
            while true {
                if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[..<newline]
                    buffer.removeSubrange(...newline)
                    scanned = 0
                    if let value = try decode(line) { return value }
                    continue
                }
                scanned = buffer.count
                if finished {
                    guard !buffer.isEmpty else { return nil }
                    let line = buffer[...]
                    buffer = []
                    scanned = 0
                    if let value = try decode(line) { return value }
                    return nil
                }
                if Task.isCancelled { return nil }
                if let chunk = try await chunks.next() {
                    buffer.append(contentsOf: chunk)
                } else {
                    finished = true
                }
            }
        }

        private func decode(_ line: ArraySlice<UInt8>) throws -> Element? {
            guard line.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { return nil }
            let value: Element
            do {
                value = try decoder.decode(Element.self, from: Data(line))
            } catch {
                throw DockerError(
                    .decoding,
                    message: "cannot decode \(Element.self) from \(String(decoding: line.prefix(300), as: UTF8.self)): \(error)",
                    request: request)
            }
            if let report = value as? any StreamFailureReporting, let failure = report.streamFailure {
                throw DockerError(.operationFailed, message: failure, request: request)
            }
            return value
        }
    }
}

/// Stream elements that can carry an in-band error (a pull's `{"error": "..."}` line after a 200 head).
protocol StreamFailureReporting {
    var streamFailure: String? { get }
}

extension ProgressMessage: StreamFailureReporting {
    var streamFailure: String? { error ?? errorDetail?.message }
}

/// The long-lived stream returned by ``DockerClient/events(filters:since:until:)``.
public typealias DockerEventStream = JSONLineSequence<DockerEvent>
/// Progress of pull, import, load and build: one ``ProgressMessage`` per JSON line; an error line throws.
public typealias ProgressStream = JSONLineSequence<ProgressMessage>
