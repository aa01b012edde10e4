import Logging

/// Wraps the real log handler to demote one framework message to `debug`: refusing an upgrade with our
/// own 401 makes Hummingbird report "Error handling upgrade result" at `error` level, once per refused
/// connection — noise for operators (and a log flood under a credential-stuffing attack). The refusal
/// itself is logged by the controller as a `notice` with its reason.
public struct QuietRefusalsLogHandler: LogHandler {
    var inner: any LogHandler

    public init(_ inner: any LogHandler) { self.inner = inner }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        if event.level >= .error, event.source == "HummingbirdWebSocket", event.message.description == "Error handling upgrade result" {
            guard inner.logLevel <= .debug else { return }
            event.level = .debug
        }
        inner.log(event: event)
    }
}
