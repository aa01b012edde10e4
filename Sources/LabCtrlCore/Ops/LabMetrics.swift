import Prometheus
import Synchronization

/// The controller's Prometheus metrics, on a registry of its own so tests can make
/// as many as they like (no global bootstrap needed).
public final class LabMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    let connections: Gauge
    /// Relays in memory. Each holds a client and a worker socket, so it must follow `connections` down;
    /// one that does not shows a session kept alive after its end (the soak's leak check reads it).
    let relays: Gauge
    let spawnSeconds: DurationHistogram
    let framesToWorker: Counter
    let framesToClient: Counter
    let bytesToWorker: Counter
    let bytesToClient: Counter
    private let workersByState: [String: Gauge]
    private let reaps: [StopReason: Counter]
    private let dynamic = Mutex<[String: Counter]>([:])
    private let waitHistograms = Mutex<[String: DurationHistogram]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "lab", metricName: name, unitName: unit, helpText: help)
        }
        connections = registry.makeGauge(descriptor: d("connections", "", "Open proxied client WebSockets"))
        relays = registry.makeGauge(descriptor: d("proxy_relays", "", "Proxy relays in memory (a client and a worker socket each); follows lab_connections"))
        spawnSeconds = registry.makeDurationHistogram(
            descriptor: d("worker_spawn", "seconds", "Time from start request to a worker that answers"), labels: [],
            buckets: [.milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30)])
        let frames = d("frames_proxied", "total", "WebSocket data frames proxied")
        framesToWorker = registry.makeCounter(descriptor: frames, labels: [("direction", "to_worker")])
        framesToClient = registry.makeCounter(descriptor: frames, labels: [("direction", "to_client")])
        let bytes = d("bytes_proxied", "total", "Payload bytes proxied")
        bytesToWorker = registry.makeCounter(descriptor: bytes, labels: [("direction", "to_worker")])
        bytesToClient = registry.makeCounter(descriptor: bytes, labels: [("direction", "to_client")])
        var states: [String: Gauge] = [:]
        for s in ["starting", "running", "stopping"] {
            states[s] = registry.makeGauge(descriptor: d("workers", "", "Workers by state"), labels: [("state", s)])
        }
        workersByState = states
        var r: [StopReason: Counter] = [:]
        for reason in StopReason.allCases {
            r[reason] = registry.makeCounter(descriptor: d("worker_stops", "total", "Workers stopped, by reason"), labels: [("reason", reason.rawValue)])
        }
        reaps = r
    }

    func setWorkers(starting: Int, running: Int, stopping: Int) {
        workersByState["starting"]?.set(to: Double(starting))
        workersByState["running"]?.set(to: Double(running))
        workersByState["stopping"]?.set(to: Double(stopping))
    }

    func stopped(_ reason: StopReason) { reaps[reason]?.increment() }

    func turnStarted(tool: String) { counter("turns", "total", "Turns started, by tool", [("tool", tool)]).increment() }

    func permissionRequested(tool: String) {
        counter("permission_requests", "total", "Permission prompts shown, by tool", [("tool", tool)]).increment()
    }

    func permissionResolved(tool: String, waited: Duration) {
        let h = waitHistograms.withLock { map in
            if let h = map[tool] { return h }
            let h = registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(
                    namespace: "lab", metricName: "permission_wait", unitName: "seconds", helpText: "Time users took to answer permission prompts, by tool"),
                labels: [("tool", tool)],
                buckets: [.seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300), .seconds(1800)])
            map[tool] = h
            return h
        }
        h.record(waited)
    }

    func authFailed(_ reason: AuthFailure) {
        counter("auth_failures", "total", "Refused credentials, by reason", [("reason", reason.rawValue)]).increment()
    }

    func handshakeRefused(_ reason: String) {
        counter("handshake_refusals", "total", "Handshakes refused by the firewall, by field", [("field", reason)]).increment()
    }

    func connectionRefused(_ reason: String) {
        counter("connections_refused", "total", "WebSocket upgrades refused by a connection cap (per_user, total) or origin", [("reason", reason)]).increment()
    }

    func connectionRevoked(_ reason: String) {
        counter("connections_revoked", "total", "Open sockets closed because their credential was revoked or expired", [("reason", reason)]).increment()
    }

    func tokensReloadFailed(_ kind: String) { tokensReloadErrors(kind).increment() }

    /// Shows the reload-error counters at 0 from the start (alerts can then watch an existing series).
    func registerTokensReloadErrors() {
        for kind in ["missing", "unreadable", "malformed"] { _ = tokensReloadErrors(kind) }
    }

    private func tokensReloadErrors(_ kind: String) -> Counter {
        counter("tokens_reload_errors", "total", "Failed reloads of LAB_TOKENS_FILE (missing and unreadable fail closed)", [("kind", kind)])
    }

    func protocolViolation(_ kind: String) {
        counter("protocol_violations", "total", "Client sockets failed for a protocol violation (invalid_utf8, handshake_too_large)", [("kind", kind)]).increment()
    }

    func workerDied(oom: Bool) {
        counter("worker_deaths", "total", "Workers that stopped on their own", [("oom", oom ? "true" : "false")]).increment()
    }

    func memoryKill() {
        counter("worker_oom_kills", "total", "Processes the kernel killed inside a worker's memory limit", []).increment()
    }

    private func counter(_ name: String, _ unit: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        return dynamic.withLock { map in
            if let c = map[key] { return c }
            let c = registry.makeCounter(
                descriptor: MetricNameDescriptor(namespace: "lab", metricName: name, unitName: unit, helpText: help), labels: labels)
            map[key] = c
            return c
        }
    }
}
