import Deadline
import RelayProtocol
import Synchronization

/// A JSON-RPC failure the runtimes report as an `error` event (timeout, child gone, error answer).
struct RPCError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The outstanding requests one runtime sent to its child, keyed by id.
///
/// Every wait is bounded by a timeout (the reference's codex client waits forever) and every
/// waiter is failed when the child goes away, so no handler can hang on a dead process. An answer
/// that arrives before its waiter is registered is kept, so "write the request, then wait" is safe.
final class RPCCalls: Sendable {
    private enum Slot {
        case reserved
        case waiting(CheckedContinuation<JSON, any Error>)
        case finished(Result<JSON, any Error>)
    }

    private struct State {
        var slots: [String: Slot] = [:]
        var closed: String?
    }

    private let state = Mutex(State())

    /// Reserves `key` before the request is written; throws when the child is already gone.
    func reserve(_ key: String) throws {
        try state.withLock { s in
            if let reason = s.closed { throw RPCError(reason) }
            s.slots[key] = .reserved
        }
    }

    /// Waits for the answer to a reserved request, at most `timeout`; the request is forgotten when
    /// it times out (a late answer is then one to an unknown id).
    func wait(_ key: String, timeout: Duration, timeoutMessage: String) async throws -> JSON {
        try await withTimeout(timeout, orThrow: RPCError(timeoutMessage)) { try await self.answer(key) }
    }

    /// The answer to a reserved request; cancelling the wait forgets the request.
    private func answer(_ key: String) async throws -> JSON {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JSON, any Error>) in
                let ready: Result<JSON, any Error>? = state.withLock { s in
                    switch s.slots[key] {
                    case .finished(let result)?:
                        s.slots[key] = nil
                        return result
                    case .reserved?:
                        s.slots[key] = .waiting(continuation)
                        return nil
                    case .waiting?, nil:
                        return .failure(RPCError(s.closed ?? "request \(key) is not pending"))
                    }
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            self.finish(key, .failure(CancellationError()))
        }
    }

    /// Forgets a reserved request that could not be written.
    func discard(_ key: String) {
        _ = state.withLock { s in s.slots.removeValue(forKey: key) }
    }

    /// Delivers an answer; returns false when no request with this id is outstanding.
    @discardableResult
    func resolve(_ key: String, _ response: JSON) -> Bool {
        finish(key, .success(response))
    }

    @discardableResult
    private func finish(_ key: String, _ result: Result<JSON, any Error>) -> Bool {
        let (found, waiter): (Bool, CheckedContinuation<JSON, any Error>?) = state.withLock { s in
            switch s.slots[key] {
            case .reserved?:
                s.slots[key] = .finished(result)
                return (true, nil)
            case .waiting(let c)?:
                s.slots[key] = nil
                return (true, c)
            case .finished?, nil:
                return (false, nil)
            }
        }
        waiter?.resume(with: result)
        return found
    }

    /// Fails every outstanding request and refuses new ones until `reopen()` (the child exited).
    func close(_ reason: String) {
        let waiters: [CheckedContinuation<JSON, any Error>] = state.withLock { s in
            s.closed = reason
            var out: [CheckedContinuation<JSON, any Error>] = []
            for (key, slot) in s.slots {
                switch slot {
                case .waiting(let c):
                    out.append(c)
                    s.slots[key] = nil
                case .reserved:
                    s.slots[key] = .finished(.failure(RPCError(reason)))
                case .finished:
                    break
                }
            }
            return out
        }
        for w in waiters { w.resume(throwing: RPCError(reason)) }
    }

    /// Accepts requests again (a new child was started).
    func reopen() {
        state.withLock { s in
            s.closed = nil
            s.slots = [:]
        }
    }
}
