import AsyncHTTPClient
import NIOCore
import RelayProtocol

/// The worker's own session list (`GET /sessions` with the worker's token, docs/protocol.md §7): the
/// controller's `GET /v1/sessions` answers with it for the signed-in user only, since each worker
/// serves one user.
enum WorkerSessions {
    /// A listing is small; a worker that answers more is refused (it runs the user's code).
    static let maxBytes = 4 << 20

    static let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(redirectConfiguration: .disallow))

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    static func list(_ address: WorkerAddress, timeout: Duration) async throws -> JSON {
        let host = address.host.contains(":") ? "[\(address.host)]" : address.host
        var request = HTTPClientRequest(url: "http://\(host):\(address.port)/sessions")
        request.headers.add(name: "Authorization", value: address.authorization)
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.secondsDouble * 1e9)))
        guard response.status == .ok else { throw Unavailable(description: "the worker answered \(response.status.code)") }
        let body = try await response.body.collect(upTo: maxBytes)
        guard let value = try? JSON.parse(Array(body.readableBytesView)), value["sessions"]?.arrayValue != nil else {
            throw Unavailable(description: "the worker's listing is not valid")
        }
        return value
    }
}
