import CircleConfig
import CircleCore
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import CleanupCore
import Foundation
import Logging
import SQLKit
import Testing

@Suite("Sessions end: idle timeout and maximum age, shown in the list, swept")
struct SessionLifetimeTests {
    private func set(_ column: String, ago minutes: Int64, session: String, in store: any DatabaseStore) async throws {
        let at = Timestamp.now().millis - minutes * 60_000
        try await store.write { db in
            try await db.raw("UPDATE sessions SET \(unsafeRaw: column) = \(bind: at) WHERE id = \(bind: session)").run()
        }
    }

    private func column(_ column: String, session: String, in store: any DatabaseStore) async throws -> Int64? {
        try await store.read { db in
            try await db.raw("SELECT \(unsafeRaw: column) AS v FROM sessions WHERE id = \(bind: session)").first()?.decode(column: "v", as: Int64.self)
        }
    }

    @Test("a session idle past the timeout or older than the maximum age is refused everywhere, leaves the list, and is swept; one in use is kept alive", arguments: Engine.available)
    func lifetime(engine: Engine) async throws {
        let harness = ServerHarness(engine, extra: [.sessionsIdleTimeout: "1h", .sessionsMaxAge: "2h"])
        try await harness.run { api, store in
            let pat = TestAccount(username: "pat")
            let first = try await api.register(pat, invite: nil)
            let laptop = try await api.login(pat, device: "laptop")
            let phone = try await api.login(pat, device: "phone")
            let listed = try await api.call("GET", "/api/v1/account/sessions", token: first)
            let sessions = try #require(TestJSON.value(listed.body, path: ["sessions"]) as? [[String: Any]])
            for session in sessions {
                let lastSeen = try #require(session["lastSeenAt"] as? Int64 ?? (session["lastSeenAt"] as? Int).map(Int64.init))
                let expires = try #require(session["expiresAt"] as? Int64 ?? (session["expiresAt"] as? Int).map(Int64.init))
                #expect(expires == lastSeen + 3_600_000, "the idle timeout comes first for a new session")
            }

            // Idle for 61 minutes: refused by every service (messaging here), and gone from the list.
            try await set("last_seen_at", ago: 61, session: laptop.sessionId, in: store)
            // Older than two hours, however recently used.
            try await set("created_at", ago: 121, session: phone.sessionId, in: store)
            try await Task.sleep(for: .milliseconds(1100))
            for token in [laptop.token, phone.token] {
                #expect(try await api.call("GET", "/api/v1/account/me", token: token).status == 401)
                #expect(try await api.call("GET", "/api/v1/conversations", token: token).status == 401)
            }
            let after = try await api.call("GET", "/api/v1/account/sessions", token: first)
            #expect(TestJSON.value(after.body, path: ["sessions"]).map { ($0 as? [Any])?.count } == 1)

            // A session in use has its last use recorded (at most every ten minutes), so it stays.
            let firstId = try #require(sessions.first { $0["current"] as? Bool == true }?["id"] as? String)
            try await set("last_seen_at", ago: 20, session: firstId, in: store)
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await api.call("GET", "/api/v1/conversations", token: first).status == 200)
            let touched = try #require(try await column("last_seen_at", session: firstId, in: store))
            #expect(Timestamp.now().millis - touched < 60_000)

            // The sweep removes the ended sessions (and a revoked one), and only those.
            let extra = try await api.login(pat, device: "tablet")
            #expect(try await api.call("DELETE", "/api/v1/account/sessions/\(extra.sessionId)", token: first).status == 204)
            let sweeper = SessionSweeper(store: store, clock: SystemWallClock(), logger: Logger(label: "test"),
                                         lifetime: SessionLifetime(idleTimeout: .seconds(3600), maxAge: .seconds(7200)))
            #expect(try await sweeper.sweep() == 3)
            #expect(try await column("created_at", session: firstId, in: store) != nil)
            #expect(try await api.call("GET", "/api/v1/account/me", token: first).status == 200)
        }
    }

    @Test("the lifetimes are validated: too short, too long or not a duration is refused at start")
    func configuration() throws {
        for bad in ["5s", "4000d", "soon"] {
            #expect(throws: ConfigError.self) {
                try SettingsLoader.load(from: ConfigSources.reader(values: [.sessionsIdleTimeout: bad]), role: .embedded)
            }
        }
        let good = try SettingsLoader.load(from: ConfigSources.reader(values: [.sessionsIdleTimeout: "12h", .sessionsMaxAge: "30d"]), role: .embedded)
        #expect(good.sessions == SessionLifetime(idleTimeout: .seconds(12 * 3600), maxAge: .seconds(30 * 86_400)))
    }
}
