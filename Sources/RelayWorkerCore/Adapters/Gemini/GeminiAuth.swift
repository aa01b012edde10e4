import Logging
import RelayProtocol

/// Gemini CLI credentials before each spawn: pick the auth type in
/// `$HOME/.gemini/settings.json` (`security.auth.selectedType`), drop API keys when OAuth is
/// preferred, and refresh an expiring OAuth token against `--gemini-oauth-token-url`.
enum GeminiAuth {
    static let oauthPersonal = "oauth-personal"
    static let apiKey = "gemini-api-key"
    static let vertex = "vertex-ai"

    static func prepare(_ environment: inout [String: String], options: WorkerOptions, logger: Logger) async {
        let dir = AuthFiles.home(environment, fallback: options.baseEnvironment) + "/.gemini"
        let credsPath = dir + "/oauth_creds.json"
        let creds = AuthFiles.readObject(credsPath)
        let hasOAuth = creds?["access_token"]?.isTruthy == true && creds?["refresh_token"]?.isTruthy == true
        let selected: String
        if hasOAuth, AuthFiles.truthy(environment["AI_RELAY_GEMINI_PREFER_OAUTH"]) {
            for key in ["GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"] where environment[key] != nil {
                environment[key] = nil
                logger.info("removed a key from the gemini environment to prefer OAuth credentials", metadata: ["key": "\(key)"])
            }
            selected = oauthPersonal
        } else if let fromEnv = selectedFromEnvironment(environment) {
            selected = fromEnv
        } else if hasOAuth {
            selected = oauthPersonal
        } else {
            return
        }
        writeSelected(selected, path: dir + "/settings.json", logger: logger)

        guard hasOAuth, var creds, let refresh = creds["refresh_token"]?.stringValue, !refresh.isEmpty else { return }
        let expiry = creds["expiry_date"]?.intValue ?? 0
        guard AuthFiles.nowMillis() + 300_000 >= expiry else { return }
        let base = options.baseEnvironment
        guard let id = environment["GEMINI_OAUTH_CLIENT_ID"] ?? base["GEMINI_OAUTH_CLIENT_ID"], !id.isEmpty,
            let secret = environment["GEMINI_OAUTH_CLIENT_SECRET"] ?? base["GEMINI_OAUTH_CLIENT_SECRET"], !secret.isEmpty
        else { return }
        logger.info("Gemini token expiring soon: refreshing via OAuth")
        let body: JSON = [
            "grant_type": "refresh_token", "refresh_token": .string(refresh), "client_id": .string(id),
            "client_secret": .string(secret),
        ]
        guard let answer = await postJSON(options.geminiOAuthTokenURL, body: body, logger: logger) else { return }
        guard let access = answer["access_token"]?.stringValue, let expiresIn = answer["expires_in"]?.intValue else {
            logger.warning("Gemini OAuth refresh answer lacks access_token or expires_in; ignored")
            return
        }
        creds["access_token"] = .string(access)
        if let newRefresh = answer["refresh_token"] { creds["refresh_token"] = newRefresh }
        creds["expiry_date"] = .int(AuthFiles.nowMillis() + expiresIn * 1000)
        do {
            try AuthFiles.writeObject(creds, to: credsPath)
        } catch {
            logger.warning("could not save the refreshed Gemini OAuth credentials", metadata: ["error": "\(error)"])
        }
    }

    static func selectedFromEnvironment(_ environment: [String: String]) -> String? {
        if AuthFiles.truthy(environment["GOOGLE_GENAI_USE_VERTEXAI"]) { return vertex }
        if let key = environment["GEMINI_API_KEY"], !key.isEmpty { return apiKey }
        if AuthFiles.truthy(environment["GOOGLE_GENAI_USE_GCA"]) { return oauthPersonal }
        return nil
    }

    /// Sets `security.auth.selectedType`, creating missing levels; writes only when it changes.
    static func writeSelected(_ type: String, path: String, logger: Logger) {
        var settings = AuthFiles.readObject(path) ?? JSONObject()
        var security = settings["security"]?.objectValue ?? JSONObject()
        var auth = security["auth"]?.objectValue ?? JSONObject()
        if auth["selectedType"]?.stringValue == type { return }
        auth["selectedType"] = .string(type)
        security["auth"] = .object(auth)
        settings["security"] = .object(security)
        do {
            try AuthFiles.writeObject(settings, to: path)
        } catch {
            logger.warning("could not write the Gemini settings", metadata: ["error": "\(error)"])
        }
    }
}
