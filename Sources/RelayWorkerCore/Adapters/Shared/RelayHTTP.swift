import AsyncHTTPClient
import Deadline
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
/// Used by the OAuth refreshes (JSON body, 15 s timeout).
func postJSON(_ url: String, body: JSON, timeout: Duration = .seconds(15), logger: Logger) async -> JSONObject? {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    request.body = .bytes(ByteBuffer(bytes: body.encoded()))
    let prepared = request
    do {
        let (status, data) = try await withTimeout(timeout) {
            let response = try await relayHTTPClient.execute(prepared, timeout: .hours(1))
            return (response.status, try await collectBody(response.body, limit: 1 << 20))
        }
        guard (200..<300).contains(Int(status.code)) else {
            logger.warning(
                "OAuth refresh refused", metadata: ["status": "\(status.code)", "body": .client(String(buffer: data))])
            return nil
        }
        guard case .object(let o)? = try? JSON.parse(Array(data.readableBytesView)) else {
            logger.warning("OAuth refresh answered something that is not a JSON object")
            return nil
        }
        return o
    } catch {
        logger.warning("OAuth refresh failed", metadata: ["error": "\(error)"])
        return nil
    }
}
