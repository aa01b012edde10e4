import HTTPTypes
import Hummingbird
import HummingbirdCore

/// Where a request's credential may be: `Authorization: Bearer <t>`, then the `token` query parameter
/// (browsers cannot set headers on a WebSocket), then the `lab_token` cookie.
public enum CredentialExtraction {
    public static func token(headers: HTTPFields, uri: URI) -> String? {
        if let bearer = bearerToken(headers) { return bearer }
        if let q = uri.queryParameters["token"], !q.isEmpty { return String(q) }
        return cookie(named: "lab_token", in: headers)
    }

    /// The `Authorization: Bearer` token only (the admin API accepts nothing else).
    public static func bearerToken(_ headers: HTTPFields) -> String? {
        guard let auth = headers[.authorization] else { return nil }
        let parts = auth.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let t = String(parts[1]).trimmingWhitespace()
        return t.isEmpty ? nil : t
    }

    static func cookie(named name: String, in headers: HTTPFields) -> String? {
        for header in headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, String(kv[0]).trimmingWhitespace() == name else { continue }
                var v = String(kv[1]).trimmingWhitespace()
                if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                return v.isEmpty ? nil : v
            }
        }
        return nil
    }
}
