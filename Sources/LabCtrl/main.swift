import ChildProcess
import Foundation
import ArgumentParser
import LabCtrlCore
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `labctrl`: the lab controller. All settings come from `LAB_*` environment variables (see `--help`).
struct LabCtrlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "labctrl",
        abstract: "Authenticated per-user relay workers (Docker containers or subprocesses) behind one WebSocket endpoint.",
        discussion: """
            Settings are environment variables (a bad value exits with status 2, naming the variable):

            \(LabConfig.variables.map { "  \($0.name.padding(toLength: 30, withPad: " ", startingAt: 0)) \($0.help)" }.joined(separator: "\n"))

            Endpoints: /ws (user WebSocket; token in Authorization: Bearer, ?token= or cookie lab_token),
            /healthz, /readyz, /metrics, and the admin API GET/POST/DELETE /v1/workers[/{user}]
            (Authorization: Bearer <LAB_ADMIN_TOKEN>).
            """)

    @Flag(name: .long, help: "Print the effective configuration (secrets redacted) and exit.")
    var printConfig = false

    /// The real entry point (async, so not ArgumentParser's `run()`).
    func execute() async throws {
        // Agents (single mode) run as this OS user: non-dumpable keeps them out of /proc/<pid>/environ
        // (LAB_JWT_SECRET, LAB_ADMIN_TOKEN), our memory and our descriptors.
        if ProcessHardening.makeNonDumpable() != 0 {
            var line = "labctrl: warning: could not make the process non-dumpable\n"
            line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        }
        let environment = ChildSpec.currentEnvironment()
        let config: LabConfig
        do throws(ConfigError) {
            config = try LabConfig.fromEnvironment(environment)
        } catch {
            fail(error)
        }
        if printConfig {
            print(config.redactedDescription)
            return
        }
        LoggingSystem.bootstrap { label in
            switch config.logFormat {
            case .json: return JSONLogHandler(label: label, level: config.logLevel)
            case .text:
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = config.logLevel
                return h
            }
        }
        let logger = Logger(label: "labctrl")
        for name in LabConfig.unknownVariables(in: environment) {
            logger.warning("unknown LAB_ variable ignored (typo?)", metadata: ["variable": "\(name)"])
        }
        let controller: LabController
        do throws(ConfigError) {
            controller = try await LabController.make(config: config, environment: environment, logger: logger)
        } catch {
            fail(error)
        }
        await controller.prepare()
        let services = controller.services { port in
            logger.info("listening", metadata: ["address": "\(config.host):\(port)", "mode": "\(config.mode.rawValue)"])
            // Machine-readable lines on stdout (scripts and tests read them; logs go to stderr).
            print("labctrl: listening on http://\(config.host.contains(":") ? "[\(config.host)]" : config.host):\(port)")
            if let url = controller.startURL(port: port) {
                // Like Jupyter: the one line an operator needs to connect.
                print("labctrl: open \(url)")
                // The web console, signed in by the same token.
                let console = url.replacingOccurrences(of: "ws://", with: "http://")
                    .replacingOccurrences(of: "/ws?token=", with: "/?token=")
                print("labctrl: console \(console)")
            }
            fflush(nil)
        }
        var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(max(1, config.shutdownGrace))
        try await ServiceGroup(configuration: group).run()
        logger.info("stopped")
    }

    /// Exit 2 with one line naming the variable.
    func fail(_ error: ConfigError) -> Never {
        var line = "labctrl: configuration error: \(error.description)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        Glibc.exit(2)
    }
}

// Parsing exits by itself for --help and bad flags; everything else happens in `execute()`.
let command = LabCtrlCommand.parseOrExit()
do {
    try await command.execute()
} catch {
    LabCtrlCommand.exit(withError: error)
}
