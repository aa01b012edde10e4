import DockerClient
import Testing

@testable import LabCtrlCore

/// Scoped adoption (`LAB_DEPLOYMENT`), safe container defaults and always-valid host names.
@Suite struct DeploymentTests {
    func isDNSLabel(_ s: String) -> Bool {
        let b = Array(s.utf8)
        return (1...63).contains(b.count) && b.first != UInt8(ascii: "-") && b.last != UInt8(ascii: "-")
            && b.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == UInt8(ascii: "-") }
    }

    @Test func deploymentIsValidatedAndNamedInErrors() throws {
        #expect(try LabConfig.fromEnvironment(["LAB_DEPLOYMENT": "lab-a1"]).deployment == "lab-a1")
        for bad in ["Lab", "a_b", "-a", "a-", String(repeating: "a", count: 21), "a.b", "ä"] {
            #expect(throws: ConfigError.self) { _ = try LabConfig.fromEnvironment(["LAB_DEPLOYMENT": bad]) }
            do {
                _ = try LabConfig.fromEnvironment(["LAB_DEPLOYMENT": bad])
            } catch {
                #expect(error.variable == "LAB_DEPLOYMENT")
            }
        }
        #expect(try LabConfig.fromEnvironment(["LAB_DEPLOYMENT": String(repeating: "a", count: 20)]).deployment.count == 20)
    }

    @Test func defaultDeploymentComesFromTheControllerID() throws {
        #expect(try LabConfig.fromEnvironment(["LAB_CONTROLLER_ID": "replica-a"]).deployment == "replica-a")
        #expect(try LabConfig.fromEnvironment(["LAB_CONTROLLER_ID": "Ctl7"]).deployment == "ctl7")
        let long1 = Deployment.derived(fromControllerID: "build-host.internal.example.com")
        let long2 = Deployment.derived(fromControllerID: "build-host.internal.example.org")
        #expect(Deployment.isValid(long1) && Deployment.isValid(long2) && long1 != long2)
        #expect(long1 == Deployment.derived(fromControllerID: "build-host.internal.example.com"), "deterministic")
        for id in ["", "---", "__", "ÄÖÜ", "a_b", String(repeating: "x", count: 300), "9f3a2b1c0d4e"] {
            #expect(Deployment.isValid(Deployment.derived(fromControllerID: id)), "\(id)")
        }
        let c = try LabConfig.fromEnvironment(["HOSTNAME": "Some_Host"])
        #expect(Deployment.isValid(c.deployment))
        #expect(c.redactedDescription.contains("LAB_DEPLOYMENT=\(c.deployment)"))
    }

    @Test func hostNameIsAlwaysAValidLabel() throws {
        #expect(UserID("alice")!.hostName == "alice")
        var seen = Set<String>()
        let ids = (1...64).map { String(repeating: "a", count: $0) } + (55...64).map { String(repeating: "b", count: $0 - 1) + "-" }
            + ["Alice", "alice", "a.b", "a_b", "a-b", "A_B.c-", "x" + String(repeating: "_", count: 63), "0" + String(repeating: "-", count: 63)]
        for raw in ids {
            let user = try #require(UserID(raw), "\(raw)")
            let h = user.hostName
            #expect(isDNSLabel(h), "\(raw) -> \(h)")
            #expect(h == user.hostName, "deterministic")
            #expect(!seen.contains(h), "\(raw) shares host name \(h)")
            seen.insert(h)
        }
    }

    @Test func layoutLabelsNamesAndFiltersByDeployment() throws {
        var c = LabConfig()
        c.mode = .multi
        c.deployment = "east"
        let layout = ContainerLayout(config: c, environment: [:], workerArguments: [])
        let user = UserID("Bob_" + String(repeating: "x", count: 60))!
        let spec = layout.spec(user: user, hostWorkspace: "/w", port: 9000, specHash: "h", createdAt: 0, token: "t0123456789abcdef")
        #expect(spec.labels?["lab.deployment"] == "east")
        #expect(layout.containerName(user) == "east-\(user.value)")
        #expect(spec.hostname.map(isDNSLabel) == true)
        #expect(layout.labelFilter() == ["lab.managed-by=labctrl", "lab.deployment=east"])
        #expect(layout.labelFilter("lab.user=bob") == ["lab.managed-by=labctrl", "lab.deployment=east", "lab.user=bob"])
    }

    @Test func safeDefaultsAreOnAndCanBeSwitchedOff() throws {
        let d = try LabConfig.fromEnvironment(["LAB_MODE": "multi"])
        #expect(d.containerMemoryBytes == 2 << 30 && d.containerCPUs == 2 && d.containerReadOnly && d.containerTmpBytes == 512 << 20)
        let layout = ContainerLayout(config: d, environment: [:], workerArguments: [])
        let hc = try #require(layout.spec(user: UserID("a")!, hostWorkspace: "/w", port: 9000, specHash: "h", createdAt: 0, token: "t0123456789abcdef").hostConfig)
        #expect(hc.memory == 2 << 30 && hc.memorySwap == 2 << 30 && hc.nanoCpus == 2_000_000_000)
        #expect(hc.readonlyRootfs == true && hc.tmpfs == ["/tmp": "rw,nosuid,nodev,mode=1777,size=\(512 << 20)"])
        // A one-CPU engine gets one CPU, not a refused create.
        let one = layout.spec(user: UserID("a")!, hostWorkspace: "/w", port: 9000, specHash: "h", createdAt: 0, token: "t0123456789abcdef", engineCPUs: 1)
        #expect(one.hostConfig?.nanoCpus == 1_000_000_000)

        for off in ["0", "none", "NONE"] {
            let c = try LabConfig.fromEnvironment(["LAB_CONTAINER_MEMORY": off, "LAB_CONTAINER_CPUS": off, "LAB_CONTAINER_READ_ONLY": "false"])
            #expect(c.containerMemoryBytes == nil && c.containerCPUs == nil && !c.containerReadOnly)
            let hc = try #require(ContainerLayout(config: c, environment: [:], workerArguments: []).spec(
                user: UserID("a")!, hostWorkspace: "/w", port: 9000, specHash: "h", createdAt: 0, token: "t0123456789abcdef").hostConfig)
            #expect(hc.memory == nil && hc.nanoCpus == nil && hc.readonlyRootfs == nil && hc.tmpfs == nil)
        }
        #expect(throws: ConfigError.self) { _ = try LabConfig.fromEnvironment(["LAB_CONTAINER_TMP_SIZE": "1k"]) }
        #expect(throws: ConfigError.self) { _ = try LabConfig.fromEnvironment(["LAB_CONTAINER_CPUS": "-1"]) }
        #expect(try LabConfig.fromEnvironment(["LAB_CONTAINER_TMP_SIZE": "64m"]).containerTmpBytes == 64 << 20)
        let printed = d.redactedDescription
        #expect(printed.contains("LAB_CONTAINER_READ_ONLY=true") && printed.contains("LAB_CONTAINER_TMP_SIZE=\(512 << 20)"))
        #expect(try LabConfig.fromEnvironment(["LAB_CONTAINER_MEMORY": "0"]).redactedDescription.contains("LAB_CONTAINER_MEMORY=none"))
    }
}
