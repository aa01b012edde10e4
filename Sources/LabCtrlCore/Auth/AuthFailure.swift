/// Why a credential was refused. The reason goes to logs and metrics, never to the client (which only
/// learns "unauthorized").
public enum AuthFailure: String, Error, Sendable, CustomStringConvertible {
    case missing
    case malformed
    case algorithmNotAllowed = "algorithm_not_allowed"
    case badSignature = "bad_signature"
    case expired
    case notYetValid = "not_yet_valid"
    case wrongIssuer = "wrong_issuer"
    case wrongAudience = "wrong_audience"
    case invalidSubject = "invalid_subject"
    case unknownToken = "unknown_token"

    public var description: String { rawValue }
}
