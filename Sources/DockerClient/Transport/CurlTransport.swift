/// The client's HTTP layer: builds transfers for one endpoint and runs them on a ``CurlLoop``.
///
/// Reference type on purpose: every copy of a `DockerClient` shares one loop thread and one connection
/// cache, and the thread ends when the last copy (and the last open stream) is gone.
final class CurlTransport: Sendable {
    let endpoint: TransportEndpoint
    private let loop: CurlLoop

    init(endpoint: TransportEndpoint) {
        self.endpoint = endpoint
        self.loop = CurlLoop(name: "docker-curl")
    }

    deinit { loop.shutdown() }

    /// Transfers running right now (requests in flight plus open streams).
    var activeTransfers: Int { loop.activeCount.load(ordering: .relaxed) }

    /// Sends a request and returns the whole response. Task cancellation aborts the transfer and throws
    /// `CancellationError`.
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let transfer = try CurlTransfer(request: request, endpoint: endpoint)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.completion = .buffered(continuation)
                loop.submit(transfer)
            }
        } onCancel: {
            loop.cancel(transfer)
        }
    }

    /// Starts a request whose body is consumed while it arrives. Returns once the response head is in
    /// (so an `/events` subscription is live when this returns); a status ≥ 400 throws the daemon's error.
    /// The stream ends when the daemon closes it; dropping or cancelling its consumer aborts the transfer.
    func stream(_ request: HTTPRequest) async throws -> HTTPStreamResponse {
        let transfer = try CurlTransfer(request: request, endpoint: endpoint)
        transfer.enableHeadDetection()
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        // Captures `self`, so the loop outlives the client while a stream is still being read.
        continuation.onTermination = { [self] _ in loop.cancel(transfer) }
        let status = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { head in
                transfer.completion = .streaming(head: head, stream: continuation)
                loop.submit(transfer)
            }
        } onCancel: {
            loop.cancel(transfer)
        }
        return HTTPStreamResponse(status: status, body: stream)
    }
}
