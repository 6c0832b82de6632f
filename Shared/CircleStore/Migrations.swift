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
        Migration(version: 3, name: "accounts", owner: "gateway") { t in
            [
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY,
                    username TEXT NOT NULL UNIQUE,
                    display_name TEXT NOT NULL,
                    auth_verifier \(t.bytes) NOT NULL,
                    salt \(t.bytes) NOT NULL,
                    identity_key \(t.bytes) NOT NULL,
                    x25519_key \(t.bytes) NOT NULL,
                    kx_cert \(t.bytes) NOT NULL,
                    is_admin \(t.bigint) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    updated_at \(t.bigint) NOT NULL
                )
                """,
                """
                CREATE TABLE key_bundles (
                    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
                    bundle \(t.bytes) NOT NULL,
                    recovery_bundle \(t.bytes) NOT NULL,
                    recovery_verifier \(t.bytes) NOT NULL,
                    version \(t.bigint) NOT NULL,
                    updated_at \(t.bigint) NOT NULL
                )
                """,
                """
                CREATE TABLE invites (
                    code_hash TEXT PRIMARY KEY,
                    grants_admin \(t.bigint) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    expires_at \(t.bigint) NOT NULL,
                    used_at \(t.bigint),
                    used_by TEXT
                )
                """,
                """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY,
                    token_hash TEXT NOT NULL UNIQUE,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    device_label TEXT NOT NULL,
                    ip TEXT NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    last_seen_at \(t.bigint) NOT NULL,
                    revoked_at \(t.bigint)
                )
                """,
                "CREATE INDEX sessions_user ON sessions (user_id)",
            ]
        },
    ]

    /// The schema version this build expects.
    public static var latestVersion: Int { all.last?.version ?? 0 }
}
