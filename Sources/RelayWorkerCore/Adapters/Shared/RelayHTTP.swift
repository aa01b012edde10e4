import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import RelayProtocol

/// The worker's one HTTP client (Cortex, OAuth refreshes).
///
/// Redirects are never followed: a bearer token must only ever reach the host that was checked
/// (an allowed Snowflake account, an operator-configured token endpoint). No proxy from the
/// environment is used.
let relayHTTPClient = HTTPClient(
    eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
    configuration: HTTPClient.Configuration(redirectConfiguration: .disallow),
    backgroundActivityLogger: Logger(label: "relay-worker.http")
)

/// Collects a response body up to `limit` bytes (error bodies, token answers).
func collectBody(_ body: HTTPClientResponse.Body, limit: Int) async throws -> ByteBuffer {
    var out = ByteBuffer()
    for try await var chunk in body {
        let room = limit - out.readableBytes
        if room <= 0 { break }
        if chunk.readableBytes > room { chunk = chunk.getSlice(at: chunk.readerIndex, length: room)! }
        out.writeBuffer(&chunk)
    }
    return out
}

/// POSTs a JSON body and returns the JSON object answered with status 2xx, or nil (logged).
/// Used by the OAuth refreshes (spec §7: JSON body, 15 s timeout).
func postJSON(_ url: String, body: JSON, timeout: Duration = .seconds(15), logger: Logger) async -> JSONObject? {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    request.body = .bytes(ByteBuffer(bytes: body.encoded()))
    let prepared = request
    do {
        let (status, data) = try await withDeadline(timeout, "timed out after \(timeout)") {
            let response = try await relayHTTPClient.execute(prepared, timeout: .hours(1))
            return (response.status, try await collectBody(response.body, limit: 1 << 20))
        }
        guard (200..<300).contains(Int(status.code)) else {
            logger.warning("OAuth refresh HTTP \(status.code): \(String(buffer: data).prefix(200))")
            return nil
        }
        guard case .object(let o)? = try? JSON.parse(Array(data.readableBytesView)) else {
            logger.warning("OAuth refresh answered something that is not a JSON object")
            return nil
        }
        return o
    } catch {
        logger.warning("OAuth refresh failed: \(error)")
        return nil
    }
}

/// Runs `body`, cancelling it and throwing `RPCError(message)` when it takes longer than `timeout`
/// (a whole-request bound: AsyncHTTPClient's own deadline stops at the response head).
func withDeadline<T: Sendable>(
    _ timeout: Duration, _ message: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw RPCError(message) }
        return value
    }
}
