import Foundation
import Logging
import RelayProtocol

/// Claude Code credentials before each spawn: the prefer-OAuth switch and the token
/// refresh, against an operator-configurable endpoint (`--claude-oauth-token-url`).
///
/// Differences from the reference: an answer without `access_token`/`expires_in` is logged and
/// ignored instead of tearing the session down, and the file is written 0600 from the start.
enum ClaudeAuth {
    static let scope = "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload"

    static func prepare(_ environment: inout [String: String], options: WorkerOptions, logger: Logger) async {
        // Third-party Anthropic-compatible endpoints (Kimi/Moonshot) use API keys: leave them alone.
        if let base = environment["ANTHROPIC_BASE_URL"], !base.isEmpty, !base.contains("anthropic.com") { return }
        guard let clientID = environment["CLAUDE_OAUTH_CLIENT_ID"] ?? options.baseEnvironment["CLAUDE_OAUTH_CLIENT_ID"],
            !clientID.isEmpty
        else { return }
        let dir = AuthFiles.home(environment, fallback: options.baseEnvironment) + "/.claude"
        let path = dir + "/.credentials.json"
        guard var creds = AuthFiles.readObject(path) else { return }
        var oauth = creds["claudeAiOauth"]?.objectValue ?? JSONObject()
        if AuthFiles.truthy(environment["AI_RELAY_CLAUDE_PREFER_OAUTH"]), oauth["accessToken"]?.isTruthy == true {
            environment["ANTHROPIC_API_KEY"] = nil
            environment["ANTHROPIC_AUTH_TOKEN"] = nil
        }
        var refreshToken = oauth["refreshToken"]?.stringValue ?? ""
        if refreshToken.isEmpty, let data = try? String(contentsOfFile: dir + "/.ohwise_refresh", encoding: .utf8) {
            refreshToken = data.trimmed
        }
        let expiresAt = oauth["expiresAt"]?.intValue ?? 0
        guard !refreshToken.isEmpty, AuthFiles.nowMillis() + 300_000 >= expiresAt else { return }
        logger.info("Claude token expiring soon: refreshing via OAuth")
        let body: JSON = [
            "grant_type": "refresh_token", "refresh_token": .string(refreshToken), "client_id": .string(clientID),
            "scope": .string(scope),
        ]
        guard let answer = await postJSON(options.claudeOAuthTokenURL, body: body, logger: logger) else { return }
        guard let access = answer["access_token"]?.stringValue, let expiresIn = answer["expires_in"]?.intValue else {
            logger.warning("Claude OAuth refresh answer lacks access_token or expires_in; ignored")
            return
        }
        oauth["accessToken"] = .string(access)
        oauth["refreshToken"] = answer["refresh_token"] ?? .string(refreshToken)
        oauth["expiresAt"] = .int(AuthFiles.nowMillis() + expiresIn * 1000)
        if let scope = answer["scope"]?.stringValue {
            oauth["scopes"] = .array(scope.split(separator: " ").map { .string(String($0)) })
        }
        creds["claudeAiOauth"] = .object(oauth)
        do { try AuthFiles.writeObject(creds, to: path) } catch { logger.warning("\(error)") }
    }
}
