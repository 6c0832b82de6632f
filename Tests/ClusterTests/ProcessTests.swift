import CircleConfig
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fixed pepper for the scaled-mode processes of a test (they must share one).
let testPepper = "dGVzdC1wZXBwZXItdGVzdC1wZXBwZXItdGVzdC1wZXBwZXI="
/// A fixed activity key likewise.
let testActivityKeys = "t1:dGVzdC1hY3Rpdml0eS1rZXktdGVzdC1hY3Rpdml0eSE="

/// The environment of a scaled-mode process: the suite's database, Redis with a key prefix of
/// its own (shared by every process of one test), the shared pepper, quiet logs.
func scaledEnvironment(_ postgres: PostgresSettings, suite: String) throws -> [String: String] {
    let redis = try TestServers.redisSettings(suite: suite)
    return [
        "POSTGRES_URL": "postgres://\(postgres.username)@\(postgres.host):\(postgres.port)/\(postgres.database)",
        "REDIS_URL": "redis://\(redis.host):\(redis.port)",
        "REDIS_PREFIX": redis.prefix,
        "AUTH_PEPPER": testPepper,
        "ACTIVITY_KEYS": testActivityKeys,
        "LOG_LEVEL": "warning",
    ]
}

let serviceExecutables = ["circle-gateway", "circle-messaging", "circle-vault", "circle-presence", "circle-signaling", "circle-cleanup"]

/// The executables as real processes: start, answer, refuse bad configuration, stop gracefully.
@Suite("Executables as processes")
struct ExecutableTests {
    @Test("`circle serve` with no configuration answers /healthz and /metrics and stops on SIGTERM")
    func embeddedDefault() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // Truly no configuration when 8080 is free; otherwise only the port is chosen.
        let port = FreePort.isListening(8080) ? try FreePort.find() : 8080
        let arguments = port == 8080 ? ["serve"] : ["serve", "--http-port", String(port)]
        let server = try ChildProcess("circle", arguments, workingDirectory: folder)
        let base = "http://127.0.0.1:\(port)"
        try await HTTPProbe.waitFor("\(base)/healthz", while: { server.isRunning })
        let metrics = try await HTTPProbe.request("GET", "\(base)/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("hb_requests{"))
        let ready = try await HTTPProbe.request("GET", "\(base)/readyz")
        #expect(ready.status == 200)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("data/circle.sqlite").path))
        #expect(server.output.contains("Open http://localhost:\(port)"))
        server.signal(SIGTERM)
        #expect(await server.waitForExit(timeout: .seconds(60)) == 0)
    }

    @Test("SIGINT stops `circle serve` gracefully too")
    func sigint() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try FreePort.find()
        let server = try ChildProcess("circle", ["serve", "--http-port", String(port), "--sqlite-path", folder.appendingPathComponent("c.sqlite").path])
        try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/healthz", while: { server.isRunning })
        server.signal(SIGINT)
        #expect(await server.waitForExit(timeout: .seconds(60)) == 0)
    }

    @Test("every executable has --help naming its options and their environment variables",
          arguments: ["circle", "circle serve", "circle migrate"] + serviceExecutables)
    func help(_ command: String) async throws {
        let parts = command.split(separator: " ").map(String.init)
        let process = try ChildProcess(parts[0], Array(parts.dropFirst()) + ["--help"])
        #expect(await process.waitForExit() == 0)
        let text = process.output
        #expect(text.contains("USAGE:"))
        if command != "circle" {
            #expect(text.contains("--postgres-url"))
            #expect(text.contains("POSTGRES_URL"))
        } else {
            #expect(text.contains("serve") && text.contains("migrate"))
        }
    }

    @Test("invalid configuration stops the process with one line naming the key and status 1", arguments: [
        (["circle", "serve", "--log-level", "verbose"], [String: String](), "circle serve: configuration error: log.level: "),
        (["circle", "serve", "--http-port", "http"], [:], "circle serve: configuration error: http.port: "),
        (["circle", "serve"], ["POSTGRES_URL": "postgres://u:hunter2@127.0.0.1:1/db"], "circle serve: configuration error: redis.url: "),
        (["circle-messaging"], [:], "circle-messaging: configuration error: postgres.url: "),
        (["circle-vault"], ["POSTGRES_URL": "postgres://u:hunter2@127.0.0.1:1/db"], "circle-vault: configuration error: redis.url: "),
        (["circle-presence"], ["POSTGRES_URL": "not a url", "REDIS_URL": "redis://127.0.0.1:1"], "circle-presence: configuration error: postgres.url: "),
        (["circle-signaling", "--postgres-url", "postgres://u:hunter2@127.0.0.1:1/db", "--redis-url", "redis://127.0.0.1:1"], [:], "circle-signaling: configuration error: postgres.url: cannot connect"),
        (["circle", "migrate", "--postgres-url", "postgres://u:hunter2@127.0.0.1:1/db"], [:], "circle migrate: configuration error: postgres.url: cannot connect"),
    ] as [([String], [String: String], String)])
    func invalidConfiguration(_ command: [String], environment: [String: String], expected: String) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let process = try ChildProcess(command[0], Array(command.dropFirst()), environment: environment, workingDirectory: folder)
        #expect(await process.waitForExit() == 1)
        let lines = process.output.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(process.output)")
        #expect(lines.first.map { $0.hasPrefix(expected) } == true, "got: \(process.output)")
        #expect(!process.output.contains("hunter2"))
    }
}

/// The service executables against the throwaway PostgreSQL and Redis of `make test`.
@Suite("Services on PostgreSQL and Redis", .enabled(if: TestServers.bothEnabled, TestServers.bothSkipReason))
struct ScaledProcessTests {
    func environment(_ postgres: PostgresSettings, extra: [String: String] = [:]) throws -> [String: String] {
        try scaledEnvironment(postgres, suite: "cluster").merging(extra) { _, new in new }
    }

    @Test("circle migrate, then each service executable answers /readyz and stops on SIGTERM")
    func servicesStart() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "services")
        let env = try environment(postgres)
        let migrate = try ChildProcess("circle", ["migrate"], environment: env)
        #expect(await migrate.waitForExit() == 0)
        #expect(migrate.output.contains("Database schema is at version \(Migrations.latestVersion)."))

        var running: [(ChildProcess, Int)] = []
        for executable in serviceExecutables {
            let port = try FreePort.find()
            running.append((try ChildProcess(executable, ["--http-port", String(port)], environment: env), port))
        }
        for (process, port) in running {
            let ready = try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { process.isRunning })
            #expect(ready.body.contains(#""database":"ok""#), "\(process.name)")
            let metrics = try await HTTPProbe.request("GET", "http://127.0.0.1:\(port)/metrics")
            #expect(metrics.body.contains(#"http_route="/readyz""#), "\(process.name)")
        }
        let info = try await HTTPProbe.request("GET", "http://127.0.0.1:\(running[0].1)/api/v1/server")
        #expect(info.body.contains(#""mode":"scaled""#))
        // A client connected to each that never sends its first request does not hold up the stop.
        let quiet = try running.map { try LoopbackConnection(port: $0.1) }
        defer { quiet.forEach { $0.close() } }
        for (process, _) in running {
            process.signal(SIGTERM)
            #expect(await process.waitForExit(timeout: .seconds(60)) == 0, "\(process.name): \(process.output)")
        }
    }

    @Test("a service executable refuses an unmigrated database and a newer one, in one line")
    func schemaMismatch() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "schema")
        let env = try environment(postgres)
        let early = try ChildProcess("circle-gateway", ["--http-port", String(try FreePort.find())], environment: env)
        #expect(await early.waitForExit() == 1)
        #expect(early.output == "circle-gateway: database schema is at version 0 but this build needs version \(Migrations.latestVersion): run `circle migrate` first\n")

        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        try await PostgresStore.withSingleConnection(postgres, logger: TestServers.quietLogger) { store in
            try await store.write { db in try await db.raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(bind: Migrations.latestVersion + 1), 'future', 0)").run() }
        }
        let newer = "database schema is at version \(Migrations.latestVersion + 1), newer than this build knows (\(Migrations.latestVersion)): run a newer Circle\n"
        let gateway = try ChildProcess("circle-gateway", ["--http-port", String(try FreePort.find())], environment: env)
        #expect(await gateway.waitForExit() == 1)
        #expect(gateway.output == "circle-gateway: " + newer)
        let serve = try ChildProcess("circle", ["serve", "--http-port", String(try FreePort.find())], environment: env)
        #expect(await serve.waitForExit() == 1)
        #expect(serve.output == "circle serve: " + newer)
    }

    @Test("`circle serve` runs the scaled mode when given both URLs, and migrates by itself")
    func serveScaled() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "servescaled")
        let port = try FreePort.find()
        let serve = try ChildProcess("circle", ["serve", "--http-port", String(port)], environment: try environment(postgres))
        let ready = try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { serve.isRunning })
        #expect(ready.status == 200)
        let info = try await HTTPProbe.request("GET", "http://127.0.0.1:\(port)/api/v1/server")
        #expect(info.body.contains(#""mode":"scaled""#))
        serve.signal(SIGTERM)
        #expect(await serve.waitForExit(timeout: .seconds(60)) == 0)
    }

    @Test("a service whose Redis is unreachable at start stops with a line naming redis.url")
    func redisUnreachable() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "noredis")
        #expect(try await ChildProcess("circle", ["migrate"], environment: try environment(postgres)).waitForExit() == 0)
        let env = try environment(postgres, extra: ["REDIS_URL": "redis://127.0.0.1:\(try FreePort.find())"])
        let process = try ChildProcess("circle-presence", ["--http-port", String(try FreePort.find())], environment: env)
        #expect(await process.waitForExit() == 1)
        #expect(process.output.hasPrefix("circle-presence: configuration error: redis.url: cannot reach Redis"), "\(process.output)")
        #expect(process.output.split(separator: "\n").count == 1)
    }
}
