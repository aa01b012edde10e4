/// Registry credentials, sent base64url-encoded in the `X-Registry-Auth` header.
public struct RegistryAuth: Encodable, Sendable {
    public var username: String?
    public var password: String?
    /// e.g. `registry.example.com:5000`.
    public var serverAddress: String?
    /// A token from a previous login, instead of username and password.
    public var identityToken: String?

    public init(
        username: String? = nil, password: String? = nil, serverAddress: String? = nil, identityToken: String? = nil
    ) {
        self.username = username
        self.password = password
        self.serverAddress = serverAddress
        self.identityToken = identityToken
    }

    enum CodingKeys: String, CodingKey {
        case username, password, serverAddress = "serveraddress", identityToken = "identitytoken"
    }

    var headers: [String] {
        let json = (try? JSONEncoder().encode(self)) ?? Data("{}".utf8)
        let encoded = json.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
        return ["X-Registry-Auth: \(encoded)"]
    }
}

/// A tar archive to upload: a file on disk (streamed, not loaded into memory) or bytes.
public enum ArchiveSource: Sendable {
    case file(path: String)
    case bytes([UInt8])

    var body: RequestBody {
        switch self {
        case .file(let path): .file(path: path)
        case .bytes(let bytes): .bytes(bytes)
        }
    }
}

extension DockerClient {
    /// `GET /images/{name}/json`; 404 if the image does not exist.
    public func inspectImage(_ name: String) async throws -> ImageInspect {
        try await send(try await request("GET", "/images/\(Query.imageSegment(name))/json"), as: ImageInspect.self)
    }

    /// `GET /images/json`. Filters such as `["reference": ["lab-base"]]` or `.label("x")`.
    public func listImages(all: Bool = false, filters: DockerFilters = [:]) async throws -> [ImageSummary] {
        var query = Query()
        if all { query.add("all", true) }
        query.add(filters: filters)
        return try await send(try await request("GET", "/images/json", query: query), as: [ImageSummary].self)
    }

    /// `POST /images/create?fromImage=`: pulls from a registry (optionally with credentials). Iterate the returned stream for progress
    /// (or call ``JSONLineSequence/waitUntilDone()``); an error line throws ``DockerError/Code/operationFailed``.
    public func pullImage(_ image: String, tag: String? = nil, auth: RegistryAuth? = nil) async throws
        -> ProgressStream
    {
        var query = Query()
        query.add("fromImage", image)
        query.add("tag", tag)
        return try await progress(
            try await request("POST", "/images/create", query: query, headers: auth?.headers ?? [], timeout: .none))
    }

    /// `POST /images/{name}/push`: pushes a tagged image (e.g. `registry:5000/team/app`) to its registry,
    /// with streamed progress like ``pullImage(_:tag:auth:)``.
    public func pushImage(_ image: String, tag: String? = nil, auth: RegistryAuth? = nil) async throws
        -> ProgressStream
    {
        var query = Query()
        query.add("tag", tag)
        // The engine requires the header on push, even for a registry without authentication.
        let headers = auth?.headers ?? RegistryAuth().headers
        return try await progress(
            try await request(
                "POST", "/images/\(Query.imageSegment(image))/push", query: query, headers: headers, timeout: .none))
    }

    /// `POST /images/create?fromSrc=-`: creates an image from a root filesystem tarball (like `docker import`).
    public func importImage(
        _ archive: ArchiveSource, repository: String, tag: String = "latest", message: String? = nil
    ) async throws -> ProgressStream {
        var query = Query()
        query.add("fromSrc", "-")
        query.add("repo", repository)
        query.add("tag", tag)
        query.add("message", message)
        return try await progress(
            try await request(
                "POST", "/images/create", query: query, body: archive.body, contentType: "application/x-tar",
                timeout: .none))
    }

    /// `POST /images/load`: loads images from a `docker save` archive.
    public func loadImages(_ archive: ArchiveSource) async throws -> ProgressStream {
        var query = Query()
        query.add("quiet", false)
        return try await progress(
            try await request(
                "POST", "/images/load", query: query, body: archive.body, contentType: "application/x-tar",
                timeout: .none))
    }

    /// `POST /build`: builds an image from a tar of the build context (see ``TarArchive``). The last
    /// messages carry the image id in `aux.id`; a failing step throws ``DockerError/Code/operationFailed``.
    public func buildImage(
        context: ArchiveSource, tag: String? = nil, options: BuildOptions = BuildOptions()
    ) async throws -> ProgressStream {
        var query = Query()
        query.add("t", tag)
        query.add("dockerfile", options.dockerfile)
        query.add("networkmode", options.networkMode)
        if !options.buildArgs.isEmpty { query.add("buildargs", Self.jsonText(options.buildArgs)) }
        if !options.labels.isEmpty { query.add("labels", Self.jsonText(options.labels)) }
        if options.noCache { query.add("nocache", true) }
        query.add("rm", options.removeIntermediate)
        if options.removeIntermediate { query.add("forcerm", true) }
        if options.pull { query.add("pull", true) }
        return try await progress(
            try await request(
                "POST", "/build", query: query, body: context.body, contentType: "application/x-tar", timeout: .none))
    }

    /// `GET /images/get`: writes a `docker save` archive of `names` to `path` (streamed, not held in memory).
    /// The file can be loaded into another engine with ``loadImages(_:)``.
    public func saveImages(_ names: [String], toFile path: String) async throws {
        var query = Query()
        for name in names { query.add("names", name) }
        let request = try await request("GET", "/images/get", query: query, timeout: .none)
        let response = try await openStream(request)
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let file = FileHandle(forWritingAtPath: path)
        else { throw DockerError(.invalidArgument, message: "cannot create \(path)", request: request.summary) }
        defer { try? file.close() }
        for try await chunk in response.body { try file.write(contentsOf: chunk) }
        try Task.checkCancellation()
    }

    /// `POST /images/{name}/tag`.
    public func tagImage(_ name: String, repository: String, tag: String = "latest") async throws {
        var query = Query()
        query.add("repo", repository)
        query.add("tag", tag)
        try await send(try await request("POST", "/images/\(Query.imageSegment(name))/tag", query: query))
    }

    /// `DELETE /images/{name}`. 409 if a container uses it (unless `force`).
    public func removeImage(_ name: String, force: Bool = false) async throws {
        var query = Query()
        query.add("force", force)
        try await send(try await request("DELETE", "/images/\(Query.imageSegment(name))", query: query))
    }

    private func progress(_ request: HTTPRequest) async throws -> ProgressStream {
        ProgressStream(chunks: try await openStream(request).body, request: request.summary)
    }

    static func jsonText(_ value: [String: String]) -> String {
        let data = (try? makeEncoder().encode(value)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

extension JSONLineSequence where Element == ProgressMessage {
    /// Reads the stream to its end and returns every message; throws on an error line or a broken stream.
    public func waitUntilDone() async throws -> [ProgressMessage] {
        var messages: [ProgressMessage] = []
        for try await message in self { messages.append(message) }
        try Task.checkCancellation()
        return messages
    }
}

import Foundation
