import DBQTestSupport
import Foundation
import Testing
import Yams

/// The deploy recipes, checked as far as this machine allows: the systemd units by
/// systemd-analyze, the Kubernetes manifests against the API's schemas
/// (kubernetes-validate), the container recipe against Debian's packages and the binary's
/// libraries. The image, the units under systemd and the compose file also run for real, by
/// deploy/local/container-test.sh, systemd-test.sh and compose-test.sh in the test command;
/// no Kubernetes cluster runs here (README says so).
@Suite("Deploy recipes: systemd units, container, Kubernetes manifests")
struct DeployRecipeTests {
    let root = TestServices.projectRoot + "/deploy"
    var dbq: String { TestServices.dbqBinary }

    /// Runs dbq with `arguments` against a Redis that refuses connections: a command line
    /// dbq accepts gets as far as connecting (exit 1, "cannot connect"); a wrong one exits 64.
    func expectAccepted(_ arguments: [String], _ what: String) async throws {
        let config = TestServices.temporaryDirectory("dbq-recipe") + "/dbq.yaml"
        try "{}\n".write(toFile: config, atomically: true, encoding: .utf8)
        let r = try await runCommand(dbq, arguments, environment: ["DBQ_REDIS_URL": "redis://127.0.0.1:\(TestServices.closedPort)", "DBQ_CONFIG": config,
                                                                 "DBQ_SCHEDULE": TestServices.projectRoot + "/jobs/schedule.yaml"], timeout: 60)
        #expect(r.status == 1 && r.stderr.contains("cannot connect"), "\(what): dbq \(arguments.joined(separator: " ")) → \(r.status): \(r.stderr)")
    }

    /// The value of `--shutdown-grace` in an argument list or ExecStart line, in seconds.
    func shutdownGrace(_ text: String) -> Double {
        guard let range = text.range(of: #"--shutdown-grace[ "',]+(\d+)s"#, options: .regularExpression) else { return 25 }
        return Double(text[range].filter(\.isNumber)) ?? 25
    }

    @Test("systemd units: systemd-analyze verify passes, hardened (exposure ≤ 2.0), restart on failure, stop timeout past the shutdown grace")
    func systemd() async throws {
        let dir = TestServices.temporaryDirectory("dbq-units")
        let units = ["dbq-worker@.service", "dbq-beat.service", "dbq-dashboard.service"]
        for unit in units {
            let text = try String(contentsOfFile: "\(root)/systemd/\(unit)", encoding: .utf8)
            for key in ["NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "StateDirectory=dbq-", "Restart=on-failure", "KillSignal=SIGTERM"] {
                #expect(text.contains(key), "\(unit) lacks \(key)")
            }
            let stop = text.split(separator: "\n").first { $0.hasPrefix("TimeoutStopSec=") }.flatMap { Double($0.dropFirst(15).filter(\.isNumber)) } ?? 0
            if unit.hasPrefix("dbq-worker") { #expect(stop > shutdownGrace(text), "TimeoutStopSec \(stop) s must exceed the shutdown grace") }
            #expect(stop > 0, "\(unit) has no TimeoutStopSec")
            // verify needs the ExecStart binary to exist: the one just built.
            let local = text.replacingOccurrences(of: "/usr/local/bin/dbq", with: dbq)
            try local.write(toFile: "\(dir)/\(unit == "dbq-worker@.service" ? "dbq-worker@default.service" : unit)", atomically: true, encoding: .utf8)
        }
        let paths = ["dbq-worker@default.service", "dbq-beat.service", "dbq-dashboard.service"].map { "\(dir)/\($0)" }
        let verify = try await runCommand("/usr/bin/systemd-analyze", ["verify"] + paths)
        #expect(verify.status == 0 && verify.stderr.isEmpty && verify.stdout.isEmpty, "systemd-analyze verify: \(verify.stdout)\(verify.stderr)")
        for path in paths {
            let security = try await runCommand("/usr/bin/systemd-analyze", ["security", "--offline=yes", path])
            let exposure = security.stdout.split(separator: "\n").last { $0.contains("Overall exposure level") }
                .flatMap { line in line.split(separator: " ").compactMap { Double($0) }.first }
            #expect((exposure ?? 10) <= 2.0, "\(path): \(security.stdout.suffix(300))")
        }
        // Under DynamicUser a shared StateDirectory is taken by whichever unit starts last.
        let stateDirectories = try units.map { unit in
            try String(contentsOfFile: "\(root)/systemd/\(unit)", encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("StateDirectory=") }.map(String.init) ?? ""
        }
        #expect(Set(stateDirectories).count == units.count, "state directories clash: \(stateDirectories)")
        // Each ExecStart is a command line dbq accepts.
        for unit in units {
            let text = try String(contentsOfFile: "\(root)/systemd/\(unit)", encoding: .utf8)
            let exec = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
            let arguments = exec.dropFirst("ExecStart=".count).split(separator: " ").dropFirst().map { $0.replacingOccurrences(of: "%H", with: "host").replacingOccurrences(of: "%i", with: "default") }
            try await expectAccepted(arguments, unit)
        }
    }

    @Test("Kubernetes: every manifest passes kubernetes-validate --strict; probes, grace and replicas fit what dbq does; the embedded configuration and schedule load")
    func kubernetes() async throws {
        let dir = "\(root)/kubernetes"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted().map { "\(dir)/\($0)" }
        #expect(files.count >= 6)
        let validate = try await runCommand("/usr/bin/env", ["kubernetes-validate", "--strict", "--quiet"] + files, timeout: 120)
        #expect(validate.status == 0, "kubernetes-validate: \(validate.stdout)\(validate.stderr)")
        // Only the KEDA resource has no schema in the validator; it is checked by hand below.
        #expect(!validate.stdout.contains("ERROR") && !validate.stderr.contains("ERROR"), "\(validate.stdout)")

        var docs: [[String: Any]] = []
        for file in files {
            for doc in try Yams.load_all(yaml: try String(contentsOfFile: file, encoding: .utf8)) { if let d = doc as? [String: Any] { docs.append(d) } }
        }
        func named(_ kind: String, _ name: String) -> [String: Any]? {
            docs.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name }
        }
        func podSpec(_ deployment: String) throws -> [String: Any] {
            let d = try #require(named("Deployment", deployment), "no Deployment \(deployment)")
            return try #require(((d["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        }
        for (name, replicas) in [("dbq-worker", 2), ("dbq-beat", 2), ("dbq-dashboard", 1)] {
            let spec = try #require(named("Deployment", name)?["spec"] as? [String: Any])
            #expect((spec["replicas"] as? Int ?? 0) >= replicas, "\(name) replicas")
            let container = try #require((try podSpec(name)["containers"] as? [[String: Any]])?.first)
            let args = (container["args"] as? [String]) ?? []
            let port = (container["ports"] as? [[String: Any]])?.first?["containerPort"] as? Int
            // The probes hit the port the arguments make dbq serve.
            #expect(args.contains { $0.hasSuffix(":\(port ?? -1)") }, "\(name): \(args) serve no port \(String(describing: port))")
            let readiness = (container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
            let liveness = (container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
            #expect(readiness?["path"] as? String == "/healthz" && liveness?["path"] as? String == "/livez", "\(name) probes")
            try await expectAccepted(args, name)
        }
        let worker = try podSpec("dbq-worker")
        let workerArgs = ((worker["containers"] as? [[String: Any]])?.first?["args"] as? [String] ?? []).joined(separator: " ")
        #expect(Double(worker["terminationGracePeriodSeconds"] as? Int ?? 0) > shutdownGrace(workerArgs))

        let scaled = try #require(named("ScaledObject", "dbq-worker"))
        let spec = try #require(scaled["spec"] as? [String: Any])
        #expect((spec["scaleTargetRef"] as? [String: Any])?["name"] as? String == "dbq-worker")
        let query = try #require(((spec["triggers"] as? [[String: Any]])?.first?["metadata"] as? [String: Any])?["query"] as? String)
        #expect(query.contains("dbq_queue_jobs") && query.contains("state=\"pending\""), "the autoscaler's query names a metric dbq serves: \(query)")

        let config = try #require(named("ConfigMap", "dbq-config")?["data"] as? [String: String])
        let tmp = TestServices.temporaryDirectory("dbq-k8s")
        try config["dbq.yaml"]!.write(toFile: tmp + "/dbq.yaml", atomically: true, encoding: .utf8)
        try config["schedule.yaml"]!.write(toFile: tmp + "/schedule.yaml", atomically: true, encoding: .utf8)
        let valid = try await runCommand(dbq, ["config", "validate", "--config", tmp + "/dbq.yaml"])
        #expect(valid.status == 0, "\(valid.stderr)")
        let next = try await runCommand(dbq, ["beat", "next", "nightly-backup", "--schedule", tmp + "/schedule.yaml", "--count", "1"])
        #expect(next.status == 0, "\(next.stderr)")
    }

    @Test("container: the compose file has the services the recipe promises; the run stage's packages exist in Debian and cover every library the binary links")
    func container() async throws {
        let compose = try #require(try Yams.load(yaml: try String(contentsOfFile: "\(root)/container/compose.yaml", encoding: .utf8)) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        for name in ["postgres", "redis", "s3", "worker", "beat", "dashboard"] { #expect(services[name] != nil, "compose has no \(name)") }
        func service(_ name: String) -> [String: Any] { services[name] as? [String: Any] ?? [:] }
        let redis = (service("redis")["command"] as? [String] ?? []).joined(separator: " ")
        #expect(redis.contains("--appendonly yes") && redis.contains("--maxmemory-policy noeviction"), "\(redis)")
        #expect((service("worker")["deploy"] as? [String: Any])?["replicas"] as? Int == 3)
        #expect((service("beat")["deploy"] as? [String: Any])?["replicas"] as? Int == 2)
        // Yams resolves the `<<: *dbq` merge: every dbq service stops with SIGTERM and a grace past the worker's.
        #expect(service("worker")["stop_signal"] as? String == "SIGTERM")
        #expect((service("worker")["stop_grace_period"] as? String).flatMap { Double($0.filter(\.isNumber)) }.map { $0 > 25 } == true)
        for name in ["worker", "beat", "dashboard"] {
            try await expectAccepted(try #require(service(name)["command"] as? [String]), name)
        }
        let valid = try await runCommand(dbq, ["config", "validate", "--config", "\(root)/container/dbq.yaml"])
        #expect(valid.status == 0, "\(valid.stderr)")

        let dockerfile = try String(contentsOfFile: "\(root)/container/Dockerfile", encoding: .utf8)
        let stages = dockerfile.components(separatedBy: "\nFROM ")
        // build (Swift), prebuilt (a binary made beforehand), the binary chosen by DBQ_BINARY, run.
        #expect(stages.count == 5, "four stages: build, prebuilt, binary, run")
        #expect(dockerfile.contains("ARG DBQ_BINARY=build") && dockerfile.contains("\nFROM ${DBQ_BINARY} AS binary"))
        let runStage = stages.last ?? ""
        // The build stage builds as the demo and the benches do: the runtime linked in there.
        let releaseBuild = try String(contentsOfFile: "\(root)/release-build.sh", encoding: .utf8)
        #expect(runStage.hasPrefix("${BASE_IMAGE}") && dockerfile.contains("ARG BASE_IMAGE=debian:bookworm-slim") && releaseBuild.contains("--static-swift-stdlib"))
        #expect(dockerfile.contains("COPY deploy/release-build.sh deploy/worker.order ./deploy/") && dockerfile.contains("bash deploy/release-build.sh"))
        #expect(FileManager.default.fileExists(atPath: "\(root)/worker.order"))
        let installLine = runStage.components(separatedBy: "--no-install-recommends").dropFirst().first?.components(separatedBy: "&&").first ?? ""
        let packages = installLine.split(whereSeparator: { $0 == " " || $0 == "\\" || $0 == "\n" }).map(String.init).filter { !$0.isEmpty }
        #expect(packages.contains("postgresql-client") && packages.contains("libpq5"), "\(packages)")
        for package in packages {
            let shown = try await runCommand("/usr/bin/apt-cache", ["show", "--no-all-versions", package])
            #expect(shown.status == 0 && shown.stdout.contains("Package: \(package)"), "Debian has no package \(package)")
        }
        // Every library the binary links, but Swift's own (linked in with --static-swift-stdlib),
        // comes from a package the run stage installs (or that every Debian has).
        let readelf = try await runCommand("/usr/bin/readelf", ["-d", dbq])
        let needed = readelf.stdout.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("(NEEDED)"), let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]") else { return nil }
            return String(line[line.index(after: open)..<close])
        }.filter { !$0.hasPrefix("libswift") && !$0.hasPrefix("libFoundation") && !$0.hasPrefix("lib_Foundation") && !["libdispatch.so", "libBlocksRuntime.so"].contains($0) }
        #expect(needed.contains("libpq.so.5") && needed.contains("libhiredis.so.0.14"), "\(needed)")
        for library in needed {
            let owner = try await runCommand("/usr/bin/dpkg", ["-S", "*/\(library)"])
            let package = owner.stdout.split(separator: ":").first.map(String.init) ?? "?"
            #expect(packages.contains(package) || ["libc6", "libgcc-s1"].contains(package), "\(library) comes from \(package), which the run stage does not install")
        }
    }
}
