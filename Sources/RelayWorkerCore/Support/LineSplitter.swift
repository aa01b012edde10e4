import NIOCore

/// Splits a byte stream into lines (without the trailing `\n` / `\r\n`), with a cap on line length so
/// one runaway line cannot take the worker's memory (the reference allows 100 MiB per line).
struct LineSplitter {
    private var pending = ByteBuffer()
    let maxLineBytes: Int
    /// Set when a line went over the cap; the rest of that line is skipped.
    private(set) var overflowed = false
    private var skipping = false

    init(maxLineBytes: Int = 64 * 1024 * 1024) { self.maxLineBytes = maxLineBytes }

    /// Appends a chunk and returns the complete lines it finished.
    mutating func push(_ chunk: ByteBuffer) -> [[UInt8]] {
        var chunk = chunk
        var lines: [[UInt8]] = []
        while let newline = chunk.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - chunk.readerIndex
            var slice = chunk.readSlice(length: length)!
            chunk.moveReaderIndex(forwardBy: 1)
            if skipping {
                skipping = false
                pending.clear()
                continue
            }
            pending.writeBuffer(&slice)
            var line = pending.readBytes(length: pending.readableBytes) ?? []
            pending.clear()
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            lines.append(line)
        }
        if !skipping {
            pending.writeBuffer(&chunk)
            if pending.readableBytes > maxLineBytes {
                pending.clear()
                skipping = true
                overflowed = true
            }
        }
        return lines
    }

    /// The unterminated tail at end of stream.
    mutating func finish() -> [UInt8]? {
        defer { pending.clear() }
        guard !skipping, pending.readableBytes > 0 else { return nil }
        return pending.readBytes(length: pending.readableBytes)
    }

    mutating func takeOverflow() -> Bool {
        defer { overflowed = false }
        return overflowed
    }
}
