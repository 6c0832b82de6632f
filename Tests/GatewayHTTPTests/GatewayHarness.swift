import AllInOne
import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import CircleTestSupport
import Configuration
import Foundation
import GatewayHTTP
import GatewayStore
import HummingbirdTesting

/// The real embedded server on a free port, with its SQLite file in a temporary folder.
struct GatewayHarness {
    let folder: URL
    let values: [CircleConfigKey: String]

    init(registration: String = "invite", extra: [CircleConfigKey: String] = [:]) {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-gateway-\(UUID().uuidString)")
        values = [
            .httpPort: "0",
            .sqlitePath: folder.appendingPathComponent("circle.sqlite").path,
            .authPepperFile: folder.appendingPathComponent("pepper.key").path,
            .activityKeyFile: folder.appendingPathComponent("activity.key").path,
            .authRegistration: registration,
            .logLevel: "error",
            .limitsRates: TestServers.lenientRateLimits,
        ].merging(extra) { _, new in new }
    }

    /// Runs `body` against a live server.
    func run(_ body: @Sendable (APIClient) async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let server = try await buildEmbeddedServer(reader: ConfigSources.reader(values: values))
        try await server.application.test(.live) { client in
            // With the socket registry's timer (revocation checks, pings), as in `runService`.
            try await server.withShutdownFirstServices {
                try await body(APIClient(baseURL: "http://127.0.0.1:\(client.port!)"))
            }
        }
    }

    /// Creates an invite directly in the database, as `circle invite create` does.
    func invite(admin: Bool = false, validFor: Duration = .seconds(3600), now: Timestamp = .now()) async throws -> String {
        let link = try await StoreFactory.withMigratedStore(.sqlite(path: values[.sqlitePath]!), logger: TestServers.quietLogger) { store in
            try await Invites.create(store: store, publicURL: "http://localhost:8080", grantsAdmin: admin, validFor: validFor, now: now)
        }
        return String(link.split(separator: "/").last!)
    }

    /// Runs a counting query against the server's database (to check that nothing was written).
    func count(_ sql: String) async throws -> Int {
        let store = try await SQLiteStore.open(path: values[.sqlitePath]!, logger: TestServers.quietLogger)
        let n = try await store.read { db in try await db.raw(SQLQueryString(sql)).first()?.decode(column: "n", as: Int.self) ?? -1 }
        try await store.close()
        return n
    }
}

import SQLKit
