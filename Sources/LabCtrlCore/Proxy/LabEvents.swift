import RelayProtocol

/// The controller's own in-band events. They use the relay's envelope so existing ai-relay clients
/// handle them: progress as `status` events whose `status` starts with `lab.` (ignored by clients that
/// do not know them), failures as ordinary `error` events.
public enum LabEvents {
    public static func status(_ status: String, _ text: String, sessionID: String, metadata: JSON? = nil) -> RelayEvent {
        RelayEvent("status", sessionID: sessionID, text: text, metadata: metadata, status: status)
    }

    public static func error(_ text: String, sessionID: String, metadata: JSON? = nil) -> RelayEvent {
        RelayEvent("error", sessionID: sessionID, text: text, metadata: metadata)
    }
}

/// A start-up progress step, fanned out to every client waiting for the same worker.
public struct LabProgress: Sendable, Equatable {
    public var status: String
    public var text: String
    public var elapsedSeconds: Double?

    public static let creating = LabProgress(status: "lab.creating", text: "Creating your lab worker")
    public static let starting = LabProgress(status: "lab.starting", text: "Starting your lab worker")
    public static let waiting = LabProgress(status: "lab.waiting", text: "Waiting for your lab worker to answer")

    static func step(_ s: StartStep) -> LabProgress {
        switch s {
        case .creating: .creating
        case .starting: .starting
        }
    }

    func event(sessionID: String) -> RelayEvent {
        var meta: JSON? = nil
        if let elapsedSeconds { meta = ["elapsed_seconds": .double((elapsedSeconds * 10).rounded() / 10)] }
        return LabEvents.status(status, text, sessionID: sessionID, metadata: meta)
    }
}
