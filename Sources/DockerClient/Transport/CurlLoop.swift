import CCurl
import Foundation
import Synchronization

/// One curl *multi* handle driven by one dedicated thread.
///
/// Why: `curl_easy_perform` blocks, and Swift's cooperative pool has one thread per core, so a few
/// long-lived streams (`/events`, `/wait`, followed logs) would starve every other `Task`. Here all transfers
/// of a client share one thread that sleeps in `curl_multi_poll`; callers only enqueue and await a
/// continuation. The multi handle also keeps a connection cache, so sequential calls reuse a keep-alive
/// connection to the engine instead of reconnecting.
/// `@unchecked Sendable`: `multi` and `active` belong to the loop thread; other threads touch only `inbox` (a Mutex) and atomics.
final class CurlLoop: @unchecked Sendable {
    private enum Command {
        case add(CurlTransfer)
        case cancel(CurlTransfer)
    }

    private struct Inbox {
        var commands: [Command] = []
        /// Set (under the lock) once the thread is about to free the multi handle; later submits fail.
        var closed = false
        var shutdownRequested = false
    }

    /// `CURLM *`; created here, used by other threads only for `curl_multi_wakeup` under `inbox`'s lock.
    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    /// Transfers currently added to the multi handle, keyed by their easy handle. Loop thread only.
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:] {
        didSet { activeCount.store(active.count, ordering: .relaxed) }
    }
    /// `active.count`, readable from any thread (tests check that aborted streams really left the loop).
    let activeCount = Atomic<Int>(0)

    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    init(name: String, maxConnectionsCached: Int = 64) {
        _ = Self.globalInit
        multi = curl_multi_init()
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxConnectionsCached)
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Queues a configured transfer. Its `completion` must be set before this call.
    func submit(_ transfer: CurlTransfer) {
        let accepted = inbox.withLock { inbox -> Bool in
            guard !inbox.closed else { return false }
            inbox.commands.append(.add(transfer))
            curl_multi_wakeup(multi)  // under the lock: the thread cannot free `multi` meanwhile
            return true
        }
        if !accepted {
            transfer.finish(error: DockerError(.transport, message: "the Docker client was shut down", request: transfer.request.summary))
        }
    }

    /// Aborts a transfer (Task cancelled, stream consumer gone). Safe before, during or after the transfer.
    func cancel(_ transfer: CurlTransfer) {
        guard !transfer.cancelled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        inbox.withLock { inbox in
            guard !inbox.closed else { return }
            inbox.commands.append(.cancel(transfer))
            curl_multi_wakeup(multi)
        }
    }

    /// Ends the thread: running transfers fail, the multi handle is freed. Called when the owning client goes.
    func shutdown() {
        inbox.withLock { inbox in
            guard !inbox.closed else { return }
            inbox.shutdownRequested = true
            curl_multi_wakeup(multi)
        }
    }

    // MARK: - Loop thread

    private func run() {
        var running: Int32 = 0
        while true {
            let (commands, stop) = inbox.withLock { inbox in
                let commands = inbox.commands
                inbox.commands.removeAll(keepingCapacity: true)
                if inbox.shutdownRequested { inbox.closed = true }
                return (commands, inbox.shutdownRequested)
            }
            for command in commands {
                switch command {
                case .add(let transfer): add(transfer)
                case .cancel(let transfer): remove(transfer, cancelled: true)
                }
            }
            if stop { break }
            _ = curl_multi_perform(multi, &running)
            collectFinished()
            // Sleeps until a socket is ready, curl's next timer, a wakeup, or 10 s.
            _ = curl_multi_poll(multi, nil, 0, 10_000, nil)
        }
        let error = DockerError(.transport, message: "the Docker client was shut down")
        for transfer in active.values {
            curl_multi_remove_handle(multi, transfer.easy)
            transfer.finish(error: error)
        }
        active.removeAll()
        curl_multi_cleanup(multi)
    }

    private func add(_ transfer: CurlTransfer) {
        if transfer.cancelled.load(ordering: .acquiring) {
            transfer.finishCancelled()
            return
        }
        let rc = curl_multi_add_handle(multi, transfer.easy)
        guard rc == CURLM_OK else {
            transfer.finish(error: DockerError(.transport, message: "curl_multi_add_handle failed (\(rc.rawValue))", request: transfer.request.summary))
            return
        }
        active[transfer.easy] = transfer
    }

    private func remove(_ transfer: CurlTransfer, cancelled: Bool) {
        guard active.removeValue(forKey: transfer.easy) != nil else { return }
        curl_multi_remove_handle(multi, transfer.easy)
        if cancelled { transfer.finishCancelled() }
    }

    private func collectFinished() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard ccurl_msg_is_done(message) != 0, let easy = message.pointee.easy_handle,
                let transfer = active.removeValue(forKey: easy)
            else { continue }
            let result = ccurl_msg_result(message)
            curl_multi_remove_handle(multi, easy)  // invalidates `message`; result was read above
            transfer.finish(result: result)
        }
    }
}
