import DockerClient

/// Multi mode on a bridge network: user containers must not reach one another's worker port. The
/// isolation is the bridge's own: inter-container communication off (`enable_icc=false`), so a container
/// reaches nothing on the bridge but the host side (where labctrl runs, on the host network), while the
/// worker token still guards against everything that does reach a worker (README, "Isolation").
extension DockerBackend {
    static let iccOption = "com.docker.network.bridge.enable_icc"

    /// Creates `LAB_NETWORK` with ICC off if it does not exist; warns when an existing bridge lets
    /// containers talk to each other. Host networking has no such isolation (the token is the only guard).
    func ensureIsolatedNetwork() async {
        guard !layout.hostNetwork else {
            logger.notice("LAB_NETWORK=host: user containers share one network namespace; only the worker token keeps them apart")
            return
        }
        do {
            let network = try await docker.inspectNetwork(layout.network)
            if network.driver == "bridge", network.options?[Self.iccOption] != "false" {
                logger.warning(
                    "LAB_NETWORK lets user containers reach each other's worker port; create it with -o \(Self.iccOption)=false",
                    metadata: ["network": "\(layout.network)"])
            }
        } catch let error as DockerError where error.isNotFound {
            do {
                _ = try await docker.createNetwork(
                    NetworkSpec(
                        name: layout.network, driver: "bridge",
                        labels: [Self.managedLabel: Self.managedValue, Deployment.label: layout.deployment],
                        options: [Self.iccOption: "false"]))
                logger.info("created LAB_NETWORK with inter-container traffic off", metadata: ["network": "\(layout.network)"])
            } catch {
                logger.error("could not create LAB_NETWORK", metadata: ["network": "\(layout.network)", "error": "\(error)"])
            }
        } catch {
            logger.error("could not inspect LAB_NETWORK", metadata: ["network": "\(layout.network)", "error": "\(error)"])
        }
    }
}
