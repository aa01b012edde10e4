/// What the transport sends: a method, a path that already carries the API version and the query, and an
/// optional body. Kept free of curl types so the client layer stays plain Swift.
struct HTTPRequest: Sendable {
    var method: String
    /// Path and query, starting with `/`, e.g. `/v1.41/containers/json?all=1`.
    var path: String
    var body: RequestBody?
    var contentType: String?
    /// Extra header lines, `Name: value`.
    var headers: [String] = []
    /// Whole-transfer timeout; `nil` means none (streams such as `/events`, `/wait` and logs with `follow`).
    var timeout: Duration?

    init(
        _ method: String, _ path: String, body: RequestBody? = nil, contentType: String? = nil,
        headers: [String] = [], timeout: Duration? = nil
    ) {
        self.method = method
        self.path = path
        self.body = body
        self.contentType = contentType
        self.headers = headers
        self.timeout = timeout
    }

    /// `GET /path` for messages and errors.
    var summary: String { "\(method) \(path)" }
}

/// A request body: bytes in memory (JSON, small tars) or a file streamed from disk (image tarballs), so a
/// 100 MB tar is not held in memory twice.
enum RequestBody: Sendable {
    case bytes([UInt8])
    case file(path: String)
}

/// A fully buffered response.
struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
}

/// A response whose body arrives as chunks while the transfer runs (events, logs, progress).
struct HTTPStreamResponse: Sendable {
    var status: Int
    var body: AsyncThrowingStream<[UInt8], any Error>
}
