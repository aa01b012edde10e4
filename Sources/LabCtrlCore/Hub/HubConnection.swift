import NIOWebSocket
import RelayProtocol

/// What the hub needs of one client connection: who it is, its activity, and a way to write to it.
///
/// The proxy's ``ClientConnection`` is the real one; tests use a fake. The hub holds connections, never
/// the proxy: a connection reaches the hub only through the ``HubInbox`` it is given with a warning.
public protocol HubConnection: AnyObject, Sendable {
    var id: Int { get }
    var user: UserID { get }
    var sessionID: String { get }
    /// Read once per reaper pass and on detach.
    var activity: ConnectionActivity { get }
    /// The hub registered this connection: from now on, the end of a busy period (which can bring the
    /// idle deadline forward) wakes the reaper through ``HubInbox/busyEnded()``.
    func attached(_ inbox: HubInbox)
    /// An idle warning is out (non-nil) or void (nil). While it is out, the first user frame reports
    /// itself through `inbox` (see docs/protocol.md, `lab.idle_warning`).
    func setWarning(_ inbox: HubInbox?)
    /// Queues a controller event behind those sent before it; returns at once. Two calls made in order
    /// (on the hub's actor) reach the client in that order.
    func send(_ event: RelayEvent)
    /// Sends a last event (if any) and closes the socket; only the first caller does anything.
    @discardableResult
    func terminate(event: RelayEvent?, code: WebSocketErrorCode, reason: String) async -> Bool
}

/// What a connection needs of the hub: to say, from any thread and without holding the hub, that a user
/// frame voided the idle warning (delivered in order to ``WorkerHub/run()``), or that a busy period ended
/// (a wake-up for the reaper).
public struct HubInbox: Sendable {
    enum Message: Sendable {
        case bringUp(UserID, attempt: Int, ProgressFanout)
        case warningVoided(UserID, at: HubClock.Instant)
    }
    let continuation: AsyncStream<Message>.Continuation
    /// The reaper's wake-ups (``WorkerHub/reaperWakes``); buffering one, so signals coalesce and none is lost.
    let reaper: AsyncStream<Void>.Continuation

    /// A turn ended or a prompt was answered: the idle deadline may now be earlier than the reaper's sleep.
    public func busyEnded() {
        reaper.yield()
    }

    /// A user frame at `at` voids `user`'s warning, if that warning was sent no later than `at`.
    public func warningVoided(_ user: UserID, at: HubClock.Instant) {
        continuation.yield(.warningVoided(user, at: at))
    }
}
