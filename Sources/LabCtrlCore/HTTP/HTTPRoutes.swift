import Hummingbird
import NIOCore
import RelayProtocol

/// Plain HTTP routes: health, readiness, metrics, the admin API, and a landing page that turns a
/// `?token=` link into the `lab_token` cookie (the "URL to open" printed in single mode).
enum HTTPRoutes {
    static func router(controller: LabController) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MethodNotAllowedMiddleware())  // first: it must also see unmatched requests
        let hub = controller.hub
        let backend = controller.backend
        let metrics = controller.metrics
        let auth = controller.auth

        router.get("/healthz") { _, _ in "ok\n" }

        router.get("/readyz") { _, _ -> Response in
            if await backend.isHealthy() { return text(.ok, "ready\n") }
            return text(.serviceUnavailable, "\(backend.kind) backend unavailable\n")
        }

        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }

        // A plain GET on the WebSocket path: say what is wrong instead of a bare 404.
        router.get("/ws") { request, _ -> Response in
            let token = CredentialExtraction.token(headers: request.headers, uri: request.uri)
            switch await auth.authenticate(token) {
            case .failure(let reason):
                metrics.authFailed(reason)
                return text(.unauthorized, "unauthorized\n", extra: [.wwwAuthenticate: "Bearer"])
            case .success:
                return text(.upgradeRequired, "this endpoint speaks WebSocket\n", extra: [.upgrade: "websocket"])
            }
        }

        // The web console (index, script, style), compiled into the binary.
        router.addConsoleRoutes()

        // Who am I: lets the console check a token before it opens a WebSocket.
        router.get("/v1/me") { request, _ -> Response in
            let token = CredentialExtraction.token(headers: request.headers, uri: request.uri)
            guard case .success(let user) = await auth.authenticate(token) else {
                return text(.unauthorized, "unauthorized\n", extra: [.wwwAuthenticate: "Bearer"])
            }
            return json(.ok, ["user": .string("\(user)")])
        }

        // The signed-in user's sessions, as their worker lists them (none while no worker runs).
        router.get("/v1/sessions") { request, _ -> Response in
            let token = CredentialExtraction.token(headers: request.headers, uri: request.uri)
            guard case .success(let user) = await auth.authenticate(token) else {
                return text(.unauthorized, "unauthorized\n", extra: [.wwwAuthenticate: "Bearer"])
            }
            guard let handle = await hub.runningHandle(user) else { return json(.ok, ["sessions": .array([]), "worker": "stopped"]) }
            do {
                var listing = try await WorkerSessions.list(handle.address, timeout: .seconds(10))
                if case .object(var o) = listing {
                    o["worker"] = "running"
                    listing = .object(o)
                }
                return json(.ok, listing)
            } catch {
                return json(.badGateway, ["error": .string("could not list your sessions: \(error)")])
            }
        }

        // ---- admin API ----------------------------------------------------------------------
        let admin = router.group("/v1/workers")
        admin.get { request, _ -> Response in
            if let denied = checkAdmin(request, auth) { return denied }
            let workers = await hub.snapshot().map(\.json)
            return json(.ok, ["workers": .array(workers)])
        }
        admin.delete("{user}") { request, context -> Response in
            if let denied = checkAdmin(request, auth) { return denied }
            guard let user = context.parameters.get("user").flatMap(UserID.init) else { return json(.badRequest, ["error": "invalid user id"]) }
            guard await hub.snapshot().contains(where: { $0.user == user }) else { return json(.notFound, ["error": .string("no worker for \(user)")]) }
            await hub.stop(user, reason: .admin)
            return json(.ok, ["stopped": .string(user.value)])
        }
        admin.post("{user}") { request, context -> Response in
            if let denied = checkAdmin(request, auth) { return denied }
            guard let user = context.parameters.get("user").flatMap(UserID.init) else { return json(.badRequest, ["error": "invalid user id"]) }
            do {
                let handle = try await hub.ensure(user)
                let info = await hub.snapshot().first { $0.user == user }
                return json(.ok, info?.json ?? ["user": .string(user.value), "id": .string(handle.id)])
            } catch {
                return json(.serviceUnavailable, ["error": .string("\(error)")])
            }
        }
        return router
    }

    static func checkAdmin(_ request: Request, _ auth: Authenticator) -> Response? {
        guard auth.adminEnabled else { return json(.forbidden, ["error": "admin API disabled (set LAB_ADMIN_TOKEN)"]) }
        guard auth.isAdmin(CredentialExtraction.bearerToken(request.headers)) else {
            return Response(
                status: .unauthorized, headers: [.contentType: "application/json", .wwwAuthenticate: "Bearer"],
                body: .init(byteBuffer: ByteBuffer(bytes: JSON.object(JSONObject(["error": "unauthorized"])).encoded())))
        }
        return nil
    }

    static func text(_ status: HTTPResponse.Status, _ body: String, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSON) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }
}

extension WorkerHub.WorkerInfo {
    var json: JSON {
        var o = JSONObject()
        o["user"] = .string(user.value)
        o["state"] = .string(state)
        o["id"] = id.map(JSON.string) ?? .null
        o["address"] = address.map(JSON.string) ?? .null
        o["connections"] = .int(Int64(connections))
        o["busy"] = .bool(busy)
        o["idle_seconds"] = .double((idleSeconds * 10).rounded() / 10)
        o["last_activity"] = .double((lastActivity * 1000).rounded() / 1000)
        o["created_at"] = createdAt.map { .double(($0 * 1000).rounded() / 1000) } ?? .null
        o["outdated"] = .bool(outdated)
        o["adopted"] = .bool(adopted)
        return .object(o)
    }
}
