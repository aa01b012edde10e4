/// Services are printed by swift-service-lifecycle at start-up: without this, the default reflection would
/// write the admin token and the generated token into the debug log.
extension Authenticator: CustomStringConvertible {
    public var description: String { "Authenticator(secrets redacted)" }
}
