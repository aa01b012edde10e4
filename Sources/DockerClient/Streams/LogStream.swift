/// Which output a ``LogChunk`` came from.
public enum LogSource: UInt8, Sendable {
    case stdin = 0
    case stdout = 1
    case stderr = 2
}

/// A piece of container output from ``DockerClient/logs(_:options:)`` or ``DockerClient/startExec(_:)``.
public struct LogChunk: Sendable, Equatable {
    public var source: LogSource
    public var bytes: [UInt8]

    public init(source: LogSource, bytes: [UInt8]) {
        self.source = source
        self.bytes = bytes
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Container output demultiplexed into stdout and stderr.
///
/// Without a TTY the engine frames each write as `[stream, 0, 0, 0, size (u32 big-endian)]` + payload;
/// this sequence strips the frames. With a TTY the output is raw and all of it is reported as stdout.
/// Returns `nil` when the engine ends the stream or the consuming task is cancelled.
public struct LogStream: AsyncSequence, Sendable {
    let chunks: AsyncThrowingStream<[UInt8], any Error>
    let multiplexed: Bool

    public func makeAsyncIterator() -> Iterator {
        Iterator(chunks: chunks.makeAsyncIterator(), multiplexed: multiplexed)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var chunks: AsyncThrowingStream<[UInt8], any Error>.Iterator
        let multiplexed: Bool
        var buffer: [UInt8] = []
        var start = 0

        init(chunks: AsyncThrowingStream<[UInt8], any Error>.Iterator, multiplexed: Bool) {
            self.chunks = chunks
            self.multiplexed = multiplexed
        }

        public mutating func next() async throws -> LogChunk? {
            guard multiplexed else {
                if Task.isCancelled { return nil }
                return try await chunks.next().map { LogChunk(source: .stdout, bytes: $0) }
            }
            while true {
                if let frame = nextFrame() { return frame }
                if Task.isCancelled { return nil }
                guard let chunk = try await chunks.next() else { return nil }  // a partial frame is dropped
                if start > 0 {
                    buffer.removeFirst(start)
                    start = 0
                }
                buffer.append(contentsOf: chunk)
            }
        }

        /// Cuts one complete frame off the buffer.
        private mutating func nextFrame() -> LogChunk? {
            while buffer.count - start >= 8 {
                let h = start
                let size = Int(buffer[h + 4]) << 24 | Int(buffer[h + 5]) << 16 | Int(buffer[h + 6]) << 8 | Int(buffer[h + 7])
                guard buffer.count - start >= 8 + size else { return nil }
                let payload = Array(buffer[(h + 8)..<(h + 8 + size)])
                start = h + 8 + size
                if size == 0 { continue }
                return LogChunk(source: LogSource(rawValue: buffer[h]) ?? .stdout, bytes: payload)
            }
            return nil
        }
    }
}
