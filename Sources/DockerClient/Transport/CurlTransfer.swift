import CCurl
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One HTTP exchange on its own curl easy handle.
///
/// Created on the caller's task, then handed to the ``CurlLoop`` thread; after the hand-off only that thread
/// touches the handle, the buffers and the continuation (the loop's lock orders the two). That is why the
/// class is `@unchecked Sendable`: the only state two threads share is the atomic `cancelled` flag.
final class CurlTransfer: @unchecked Sendable {
    /// How the caller waits.
    enum Completion {
        /// The whole body at the end.
        case buffered(CheckedContinuation<HTTPResponse, any Error>)
        /// The status as soon as the response head arrives, then body chunks on `stream`.
        case streaming(head: CheckedContinuation<Int, any Error>?, stream: AsyncThrowingStream<[UInt8], any Error>.Continuation)
    }

    let request: HTTPRequest
    let easy: UnsafeMutableRawPointer
    /// Set by `Task` cancellation or stream termination from any thread; checked by the loop on add.
    let cancelled = Atomic<Bool>(false)
    var completion: Completion?

    private let usesTLS: Bool
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var postData: UnsafeMutableRawBufferPointer?
    private var uploadFD: Int32 = -1
    /// Body bytes kept for buffered responses and for error bodies of streams.
    private var body: [UInt8] = []
    private var status = 0
    /// For streams: the head continuation was resumed with a 1xx–3xx status; chunks now go to the stream.
    private var streamingBody = false

    init(request: HTTPRequest, endpoint: TransportEndpoint) throws(DockerError) {
        guard let easy = curl_easy_init() else {
            throw DockerError(.transport, message: "curl_easy_init failed", request: request.summary)
        }
        self.request = request
        self.easy = easy
        self.usesTLS = endpoint.tls != nil
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        try configure(endpoint)  // on failure deinit still runs and frees what was set up
    }

    deinit {
        curl_easy_cleanup(easy)
        if let list = headerList { curl_slist_free_all(list) }
        postData?.deallocate()
        if uploadFD >= 0 { close(uploadFD) }
        errorBuffer.deallocate()
    }

    private func configure(_ endpoint: TransportEndpoint) throws(DockerError) {
        let h = easy
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = ccurl_setopt_string(h, CURLOPT_URL, endpoint.baseURL + request.path)
        if let socket = endpoint.unixSocketPath {
            _ = ccurl_setopt_string(h, CURLOPT_UNIX_SOCKET_PATH, socket)
        }
        if let tls = endpoint.tls {
            _ = ccurl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, tls.verifyPeer ? 1 : 0)
            _ = ccurl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, tls.verifyPeer ? 2 : 0)
            if let ca = tls.caCertificatePath { _ = ccurl_setopt_string(h, CURLOPT_CAINFO, ca) }
            if let cert = tls.clientCertificatePath { _ = ccurl_setopt_string(h, CURLOPT_SSLCERT, cert) }
            if let key = tls.clientKeyPath { _ = ccurl_setopt_string(h, CURLOPT_SSLKEY, key) }
        }
        _ = ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)  // required with threads
        _ = ccurl_setopt_long(h, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, endpoint.connectTimeout.curlMilliseconds)
        if let timeout = request.timeout {
            _ = ccurl_setopt_long(h, CURLOPT_TIMEOUT_MS, timeout.curlMilliseconds)
        }
        _ = ccurl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        _ = ccurl_setopt_pointer(h, CURLOPT_ERRORBUFFER, errorBuffer)

        _ = ccurl_setopt_write_function(h) { data, size, count, userdata in
            let n = size * count
            guard let data, let userdata else { return n }
            Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
                .received(UnsafeRawBufferPointer(start: data, count: n))
            return n
        }
        _ = ccurl_setopt_pointer(h, CURLOPT_WRITEDATA, me)

        // "Expect:" stops curl from waiting for `100 Continue` before large uploads.
        var headers: [String] = ["Expect:"]
        if let type = request.contentType { headers.append("Content-Type: \(type)") }
        headers += request.headers

        switch request.method {
        case "GET": _ = ccurl_setopt_long(h, CURLOPT_HTTPGET, 1)
        case "HEAD": _ = ccurl_setopt_long(h, CURLOPT_NOBODY, 1)
        default: _ = ccurl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method)
        }
        switch request.body {
        case nil:
            if request.method == "POST" || request.method == "PUT" { headers.append("Content-Length: 0") }
        case .bytes(let bytes):
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            bytes.withUnsafeBytes { source in
                if let base = source.baseAddress { buffer.baseAddress!.copyMemory(from: base, byteCount: source.count) }
            }
            postData = buffer
            _ = ccurl_setopt_long(h, CURLOPT_POST, 1)
            _ = ccurl_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count))
            _ = ccurl_setopt_pointer(h, CURLOPT_POSTFIELDS, buffer.baseAddress)
            if request.method != "POST" { _ = ccurl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method) }
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw DockerError(
                    .invalidArgument, message: "cannot open \(path): \(String(cString: strerror(errno)))",
                    request: request.summary)
            }
            uploadFD = fd
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                throw DockerError(.invalidArgument, message: "cannot stat \(path)", request: request.summary)
            }
            _ = ccurl_setopt_long(h, CURLOPT_POST, 1)
            _ = ccurl_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(info.st_size))
            _ = ccurl_setopt_read_function(h) { buffer, size, count, userdata in
                guard let buffer, let userdata else { return Int(CURL_READFUNC_ABORT) }
                let fd = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue().uploadFD
                let n = read(fd, buffer, size * count)
                return n < 0 ? Int(CURL_READFUNC_ABORT) : n
            }
            _ = ccurl_setopt_pointer(h, CURLOPT_READDATA, me)
            if request.method != "POST" { _ = ccurl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method) }
        }
        for header in headers { headerList = curl_slist_append(headerList, header) }
        _ = ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, headerList)
    }

    /// Streams need to know the status before the first body byte (an `/events` subscription sends
    /// its head at once, then nothing until an event happens), so they watch the end of the header block.
    func enableHeadDetection() {
        _ = ccurl_setopt_header_function(easy) { data, size, count, userdata in
            let n = size * count
            guard let userdata else { return n }
            // A line of just CRLF ends one header block.
            if n <= 2 {
                Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue().headersEnded()
            }
            return n
        }
        _ = ccurl_setopt_pointer(easy, CURLOPT_HEADERDATA, Unmanaged.passUnretained(self).toOpaque())
    }

    // MARK: - Loop-thread callbacks

    private func responseCode() -> Int {
        var code = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    private func headersEnded() {
        let code = responseCode()
        guard code >= 200 else { return }  // 1xx interim response: another head follows
        status = code
        guard case .streaming(let head?, let stream) = completion, code < 400 else { return }
        streamingBody = true
        completion = .streaming(head: nil, stream: stream)
        head.resume(returning: code)
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        if streamingBody, case .streaming(_, let stream) = completion {
            stream.yield([UInt8](bytes))
        } else {
            body.append(contentsOf: bytes)
        }
    }

    /// Called once by the loop when curl reports the transfer done (after removing it from the multi).
    func finish(result: CURLcode) {
        defer { completion = nil }
        if status == 0 { status = responseCode() }
        let failure: DockerError? = result == CURLE_OK ? nil : transportError(result)
        switch completion {
        case .buffered(let continuation):
            if let failure {
                continuation.resume(throwing: failure)
            } else {
                continuation.resume(returning: HTTPResponse(status: status, body: body))
            }
        case .streaming(let head, let stream):
            if let head {
                if let failure {
                    head.resume(throwing: failure)
                } else if status >= 400 || status == 0 {
                    head.resume(throwing: DockerError.api(status: status, body: body, request: request.summary))
                } else {
                    // Short response that ended before the header callback fired; deliver what came.
                    head.resume(returning: status)
                    if !body.isEmpty { stream.yield(body) }
                }
                stream.finish(throwing: nil)
            } else {
                stream.finish(throwing: failure)
            }
        case nil:
            break
        }
    }

    /// Ends the transfer early because its `Task` was cancelled or its stream's consumer went away.
    /// Buffered callers get `CancellationError`; an established stream simply ends.
    func finishCancelled() {
        defer { completion = nil }
        switch completion {
        case .buffered(let continuation):
            continuation.resume(throwing: CancellationError())
        case .streaming(let head, let stream):
            head?.resume(throwing: CancellationError())
            stream.finish()
        case nil:
            break
        }
    }

    /// Fails a transfer that never ran (the client was shut down).
    func finish(error: DockerError) {
        defer { completion = nil }
        switch completion {
        case .buffered(let continuation): continuation.resume(throwing: error)
        case .streaming(let head, let stream):
            head?.resume(throwing: error)
            stream.finish(throwing: error)
        case nil: break
        }
    }

    private func transportError(_ code: CURLcode) -> DockerError {
        let detail = String(
            decoding: UnsafeRawBufferPointer(start: errorBuffer, count: strlen(errorBuffer)), as: UTF8.self)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        return DockerError(
            DockerError.Code(curl: code, usesTLS: usesTLS, detail: message), message: message,
            request: request.summary, curlCode: Int(code.rawValue))
    }
}

extension DockerError.Code {
    /// Sorts curl failures into the few kinds a caller acts on differently.
    init(curl code: CURLcode, usesTLS: Bool, detail: String) {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            self = .engineUnreachable
        case CURLE_OPERATION_TIMEDOUT:
            self = .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
            CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT:
            self = .tls
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR:
            // TLS 1.3 servers reject a missing client certificate after the handshake, on first read.
            self = usesTLS && (detail.contains("SSL") || detail.contains("alert")) ? .tls : .transport
        default:
            self = .transport
        }
    }
}
