import CircleConfig
import CircleCore
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing

/// `circle audit verify` as an admin runs it, on a real server's data: intact chains pass; a row
/// altered, deleted or reordered directly in the database is named, and the command fails.
@Suite("circle audit verify")
struct AuditCommandTests {
    /// A server (`circle serve`) on `database`, driven until it recorded activity, then stopped.
    func recordActivity(_ arguments: [String], folder: URL) async throws -> String {
        let port = try FreePort.find()
        let server = try ChildProcess("circle", ["serve", "--http-port", String(port), "--auth-registration", "open", "--log-level", "warning"] + arguments,
                                      workingDirectory: folder)
        try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { server.isRunning })
        let api = APIClient(baseURL: "http://127.0.0.1:\(port)")
        let ana = TestAccount(username: "ana")
        _ = try await api.register(ana, invite: nil)
        for device in ["phone", "laptop", "tablet"] { _ = try await api.login(ana, device: device) }
        _ = try await api.call("POST", "/api/v1/auth/login", json: ana.login(authKey: SecureRandom.bytes(32)))
        server.signal(SIGTERM)
        #expect(await server.waitForExit() == 0)
        return ana.userId
    }

    func verify(_ arguments: [String], folder: URL) async throws -> (Int32?, String) {
        let process = try ChildProcess("circle", ["audit", "verify"] + arguments, workingDirectory: folder)
        return (await process.waitForExit(timeout: .seconds(60)), process.output)
    }

    @Test("on SQLite and PostgreSQL: intact, then an altered, a deleted and a reordered entry named at the right place", arguments: ["sqlite", "postgres"])
    func verifyFindsTampering(_ engine: String) async throws {
        guard engine == "sqlite" || TestServers.bothEnabled else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var database: [String] = []
        let store: any DatabaseStore
        var close: @Sendable () async -> Void = {}
        if engine == "postgres" {
            let postgres = try await TestServers.freshPostgresDatabase(suite: "audit")
            let redis = try TestServers.redisSettings(suite: "audit")
            let url = "postgres://\(postgres.username)@\(postgres.host):\(postgres.port)/\(postgres.database)"
            database = ["--postgres-url", url]
            _ = try await recordActivity(database + ["--redis-url", "redis://\(redis.host):\(redis.port)", "--redis-prefix", redis.prefix,
                                                            "--auth-pepper", testPepper, "--activity-keys", testActivityKeys], folder: folder)
            let postgresStore = try PostgresStore(settings: postgres, logger: TestServers.quietLogger)
            let runner = Task { try await postgresStore.run() }
            store = postgresStore
            close = { runner.cancel(); _ = await runner.result }
        } else {
            database = ["--sqlite-path", folder.appendingPathComponent("data/circle.sqlite").path]
            _ = try await recordActivity(database, folder: folder)
            store = try await SQLiteStore.open(path: folder.appendingPathComponent("data/circle.sqlite").path, logger: TestServers.quietLogger)
        }
        do {
            try await check(database, folder: folder, store: store)
        } catch {
            await close()
            throw error
        }
        await close()
        if let sqlite = store as? SQLiteStore { try await sqlite.close() }
    }

    func check(_ database: [String], folder: URL, store: any DatabaseStore) async throws {
        let intact = try await verify(database, folder: folder)
        #expect(intact.0 == 0, "\(intact.1)")
        #expect(intact.1.contains("ana [") && intact.1.contains("intact"), "\(intact.1)")
        #expect(intact.1.contains("(server) [server]: intact"), "\(intact.1)")
        #expect(intact.1.contains("all 2 chains intact"), "\(intact.1)")
        let onlyAna = try await verify(database + ["--user", "ana"], folder: folder)
        #expect(onlyAna.0 == 0 && !onlyAna.1.contains("(server)"), "\(onlyAna.1)")

        // Ana's chain: session.created (1), sign-in x3 (2-4), sign-in.failed (5).
        let cases: [(String, [String], String)] = [
            ("altered", ["UPDATE activity_logs SET kind = 'sign-out' WHERE seq = 3 AND chain <> 'server'"], "BROKEN at entry 3"),
            ("deleted", ["DELETE FROM activity_logs WHERE seq = 2 AND chain <> 'server'"], "BROKEN at entry 2"),
            ("reordered", ["UPDATE activity_logs SET seq = 100 WHERE seq = 3 AND chain <> 'server'",
                           "UPDATE activity_logs SET seq = 3 WHERE seq = 4 AND chain <> 'server'",
                           "UPDATE activity_logs SET seq = 4 WHERE seq = 100 AND chain <> 'server'"], "BROKEN at entry 3"),
        ]
        for (name, statements, expected) in cases {
            let saved = try await store.read { db in try await db.raw("SELECT * FROM activity_logs WHERE chain <> 'server' ORDER BY seq").all().count }
            #expect(saved == 5)
            // Each case on a fresh copy of the rows: keep them, tamper, check, restore.
            let backup = "activity_backup_\(name)"
            try await store.write { db in
                try await db.raw(SQLQueryString("CREATE TABLE \(backup) AS SELECT * FROM activity_logs")).run()
                for statement in statements { try await db.raw(SQLQueryString(statement)).run() }
            }
            let (status, output) = try await verify(database, folder: folder)
            #expect(status == 1, "\(name): \(output)")
            #expect(output.contains(expected), "\(name): \(output)")
            #expect(output.contains("1 of 2 chains broken"), "\(name): \(output)")
            try await store.write { db in
                try await db.raw("DELETE FROM activity_logs").run()
                try await db.raw(SQLQueryString("INSERT INTO activity_logs SELECT * FROM \(backup)")).run()
                try await db.raw(SQLQueryString("DROP TABLE \(backup)")).run()
            }
        }
        #expect(try await verify(database, folder: folder).0 == 0, "restored")
    }
}
