import SQLKit

/// The one ordered list of schema steps for the whole database (DESIGN section 11).
///
/// Each later issue appends its steps here; a step, once released, never changes.
public enum Migrations {
    public static let all: [Migration] = [
        Migration(version: 1, name: "event-log", owner: "shared") { t in
            [
                """
                CREATE TABLE user_event_counters (
                    user_id TEXT PRIMARY KEY,
                    last_seq \(t.bigint) NOT NULL
                )
                """,
                """
                CREATE TABLE user_events (
                    user_id TEXT NOT NULL,
                    seq \(t.bigint) NOT NULL,
                    type TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    published_at \(t.bigint),
                    PRIMARY KEY (user_id, seq)
                )
                """,
                "CREATE INDEX user_events_unpublished ON user_events (created_at) WHERE published_at IS NULL",
                "CREATE INDEX user_events_created ON user_events (created_at)",
            ]
        },
        Migration(version: 2, name: "server-identity", owner: "gateway") { db, engine in
            try await db.raw("""
                CREATE TABLE server_settings (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                )
                """).run()
            try await db.raw("INSERT INTO server_settings (key, value) VALUES ('server_id', \(bind: ServerIdentity.newServerID()))").run()
        },
    ]

    /// The schema version this build expects.
    public static var latestVersion: Int { all.last?.version ?? 0 }
}
