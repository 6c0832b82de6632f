import SQLKit

/// The one ordered list of schema steps for the whole database (ARCHITECTURE 11).
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
        Migration(version: 4, name: "messaging", owner: "messaging") { t in
            [
                """
                CREATE TABLE conversations (
                    id TEXT PRIMARY KEY,
                    kind \(t.bigint) NOT NULL,
                    head_n \(t.bigint) NOT NULL,
                    epoch \(t.bytes) NOT NULL,
                    disappear_seconds \(t.bigint) NOT NULL,
                    read_receipts \(t.bigint) NOT NULL,
                    last_seq \(t.bigint) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    updated_at \(t.bigint) NOT NULL
                )
                """,
                """
                CREATE TABLE conversation_members (
                    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL,
                    role \(t.bigint) NOT NULL,
                    fingerprint \(t.bytes) NOT NULL,
                    joined_n \(t.bigint) NOT NULL,
                    receipts \(t.bigint) NOT NULL,
                    PRIMARY KEY (conversation_id, user_id)
                )
                """,
                "CREATE INDEX conversation_members_user ON conversation_members (user_id)",
                """
                CREATE TABLE membership_ops (
                    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    n \(t.bigint) NOT NULL,
                    actor TEXT NOT NULL,
                    op \(t.bytes) NOT NULL,
                    signature \(t.bytes) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    PRIMARY KEY (conversation_id, n)
                )
                """,
                """
                CREATE TABLE messages (
                    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    seq \(t.bigint) NOT NULL,
                    sender_id TEXT NOT NULL,
                    kind \(t.bigint) NOT NULL,
                    refers_to TEXT,
                    header \(t.bytes) NOT NULL,
                    ciphertext \(t.bytes) NOT NULL,
                    signature \(t.bytes) NOT NULL,
                    expires_at \(t.bigint) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    edited_by TEXT,
                    deleted_at \(t.bigint),
                    PRIMARY KEY (conversation_id, id),
                    UNIQUE (conversation_id, seq)
                )
                """,
                "CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at > 0",
                """
                CREATE TABLE key_envelopes (
                    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    epoch TEXT NOT NULL,
                    sender_id TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    generation \(t.bigint) NOT NULL,
                    recipient_id TEXT NOT NULL,
                    enc \(t.bytes) NOT NULL,
                    ciphertext \(t.bytes) NOT NULL,
                    signature \(t.bytes) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    PRIMARY KEY (conversation_id, epoch, sender_id, device_id, generation, recipient_id)
                )
                """,
                "CREATE INDEX key_envelopes_recipient ON key_envelopes (recipient_id, conversation_id)",
                """
                CREATE TABLE message_reads (
                    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL,
                    seq \(t.bigint) NOT NULL,
                    read_at \(t.bigint) NOT NULL,
                    PRIMARY KEY (conversation_id, user_id)
                )
                """,
            ]
        },
        Migration(version: 5, name: "pins", owner: "gateway") { t in
            [
                """
                CREATE TABLE pins (
                    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
                    version \(t.bigint) NOT NULL,
                    blob \(t.bytes) NOT NULL,
                    updated_at \(t.bigint) NOT NULL
                )
                """,
            ]
        },
        Migration(version: 6, name: "vault", owner: "vault") { t in
            [
                // Stored files: ciphertext in blob storage, everything here opaque but the sizes.
                """
                CREATE TABLE vault_files (
                    id TEXT PRIMARY KEY,
                    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    level TEXT NOT NULL,
                    conversation_id TEXT,
                    meta \(t.bytes) NOT NULL,
                    wrap \(t.bytes) NOT NULL,
                    size \(t.bigint) NOT NULL,
                    sha256 \(t.bytes) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    expires_at \(t.bigint) NOT NULL
                )
                """,
                "CREATE INDEX vault_files_owner ON vault_files (owner_id, created_at)",
                "CREATE INDEX vault_files_conversation ON vault_files (conversation_id) WHERE conversation_id IS NOT NULL",
                "CREATE INDEX vault_files_expiry ON vault_files (expires_at) WHERE expires_at > 0",
                // Unfinished tus uploads; the bytes so far are in blob storage under the upload id.
                """
                CREATE TABLE vault_uploads (
                    id TEXT PRIMARY KEY,
                    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    file_id TEXT NOT NULL UNIQUE,
                    length \(t.bigint) NOT NULL,
                    upload_offset \(t.bigint) NOT NULL,
                    level TEXT NOT NULL,
                    conversation_id TEXT,
                    meta \(t.bytes) NOT NULL,
                    wrap \(t.bytes) NOT NULL,
                    file_expires_at \(t.bigint) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    expires_at \(t.bigint) NOT NULL
                )
                """,
                "CREATE INDEX vault_uploads_expiry ON vault_uploads (expires_at)",
                // Bytes each member holds (files and unfinished uploads), for the quota.
                """
                CREATE TABLE vault_usage (
                    owner_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
                    used \(t.bigint) NOT NULL
                )
                """,
                // Share links: the file key wrapped under the link's key, and the hash of its access value.
                """
                CREATE TABLE vault_links (
                    id TEXT PRIMARY KEY,
                    file_id TEXT NOT NULL,
                    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    wrap \(t.bytes),
                    verifier \(t.bytes),
                    salt \(t.bytes),
                    iterations \(t.bigint) NOT NULL,
                    expires_at \(t.bigint) NOT NULL,
                    max_downloads \(t.bigint) NOT NULL,
                    downloads \(t.bigint) NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    revoked_at \(t.bigint)
                )
                """,
                "CREATE INDEX vault_links_file ON vault_links (file_id)",
                """
                CREATE TABLE vault_link_uses (
                    link_id TEXT NOT NULL REFERENCES vault_links(id) ON DELETE CASCADE,
                    at \(t.bigint) NOT NULL,
                    outcome TEXT NOT NULL,
                    ip TEXT NOT NULL
                )
                """,
                "CREATE INDEX vault_link_uses_link ON vault_link_uses (link_id, at)",
            ]
        },
        // Events waiting to be published: one row per append instead of a mark on every event
        // (see `UserEventLog`). Events still unmarked become entries, so the relay sends them.
        Migration(version: 7, name: "event-outbox", owner: "shared") { t in
            [
                """
                CREATE TABLE event_outbox (
                    id TEXT PRIMARY KEY,
                    created_at \(t.bigint) NOT NULL,
                    events TEXT NOT NULL
                )
                """,
                "CREATE INDEX event_outbox_created ON event_outbox (created_at)",
                """
                INSERT INTO event_outbox (id, created_at, events)
                SELECT 'unmarked:' || user_id || ':' || seq, created_at, user_id || ':' || seq || ':' || seq
                FROM user_events WHERE published_at IS NULL
                """,
                "DROP INDEX user_events_unpublished",
                "ALTER TABLE user_events DROP COLUMN published_at",
            ]
        },
        // Messages leave the per-user event log: each conversation's `messages` is its own log,
        // read from each member's cursor. Committed batches whose messages may not have been
        // published yet are listed in `message_outbox` (conversation ranges) for the messaging
        // relay. Stored events that copied a message, an envelope or a file's encrypted metadata
        // keep their place in the sequence and say nothing more (clients read the subjects from
        // their own endpoints).
        Migration(version: 8, name: "message-log", owner: "messaging") { t in
            [
                """
                CREATE TABLE message_outbox (
                    id TEXT PRIMARY KEY,
                    created_at \(t.bigint) NOT NULL,
                    ranges TEXT NOT NULL
                )
                """,
                "CREATE INDEX message_outbox_created ON message_outbox (created_at)",
                """
                UPDATE user_events SET type = 'event.gone', payload = '{}'
                WHERE type IN ('message.new', 'envelope.new', 'vault.file.changed')
                """,
            ]
        },
        // The security activity log: one hash chain per user (and one for the server, `server`),
        // written in the transaction of the change it records; IP and user agent sealed under a
        // server key named by `key_id`. A chain's head is locked to append; its anchor is the
        // hash of the last entry removed by retention.
        Migration(version: 9, name: "activity-log", owner: "shared") { t in
            [
                """
                CREATE TABLE activity_heads (
                    chain TEXT PRIMARY KEY,
                    seq \(t.bigint) NOT NULL,
                    hash \(t.bytes) NOT NULL,
                    anchor_seq \(t.bigint) NOT NULL,
                    anchor_hash \(t.bytes) NOT NULL
                )
                """,
                """
                CREATE TABLE activity_logs (
                    chain TEXT NOT NULL,
                    seq \(t.bigint) NOT NULL,
                    at \(t.bigint) NOT NULL,
                    kind TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    ip_sealed \(t.bytes) NOT NULL,
                    ua_sealed \(t.bytes) NOT NULL,
                    details TEXT NOT NULL,
                    alert \(t.bigint) NOT NULL,
                    hash \(t.bytes) NOT NULL,
                    PRIMARY KEY (chain, seq)
                )
                """,
                "CREATE INDEX activity_logs_at ON activity_logs (at)",
                "CREATE INDEX activity_logs_alerts ON activity_logs (chain, seq) WHERE alert = 1",
            ]
        },
        // Presence: each member's chosen state, custom status and privacy choices (the presence
        // service writes them), and the live sockets the gateways report, with each gateway's
        // lease (a gateway that stops renewing it is taken for gone with its sockets). A closed
        // socket stays a while as a tombstone (`closed_at` > 0), so its close read before its
        // open by another replica still wins.
        Migration(version: 10, name: "presence", owner: "presence") { t in
            [
                """
                CREATE TABLE user_presence (
                    user_id TEXT PRIMARY KEY,
                    state TEXT NOT NULL,
                    status_emoji TEXT NOT NULL,
                    status_text TEXT NOT NULL,
                    status_expires_at \(t.bigint) NOT NULL,
                    hide_last_seen \(t.bigint) NOT NULL,
                    typing \(t.bigint) NOT NULL,
                    last_seen_at \(t.bigint) NOT NULL,
                    online \(t.bigint) NOT NULL,
                    updated_at \(t.bigint) NOT NULL
                )
                """,
                "CREATE INDEX user_presence_status_expiry ON user_presence (status_expires_at) WHERE status_expires_at > 0",
                """
                CREATE TABLE presence_gateways (
                    gateway_id TEXT PRIMARY KEY,
                    lease_until \(t.bigint) NOT NULL
                )
                """,
                """
                CREATE TABLE presence_sockets (
                    gateway_id TEXT NOT NULL,
                    socket_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    opened_at \(t.bigint) NOT NULL,
                    closed_at \(t.bigint) NOT NULL,
                    PRIMARY KEY (gateway_id, socket_id)
                )
                """,
                "CREATE INDEX presence_sockets_user ON presence_sockets (user_id)",
            ]
        },
        // Calls (the signaling service): who called whom in which conversation, when, for how
        // long, with what media, and how it ended; never SDP, candidates or addresses. At most
        // one call per conversation is ringing or active (the unique index settles glare).
        Migration(version: 11, name: "calls", owner: "signaling") { t in
            [
                """
                CREATE TABLE video_calls (
                    id TEXT PRIMARY KEY,
                    conversation_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    media TEXT NOT NULL,
                    creator_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    ring_until \(t.bigint) NOT NULL,
                    answered_at \(t.bigint) NOT NULL,
                    ended_at \(t.bigint) NOT NULL
                )
                """,
                "CREATE INDEX video_calls_conversation ON video_calls (conversation_id, created_at)",
                "CREATE UNIQUE INDEX video_calls_live ON video_calls (conversation_id) WHERE state <> 'ended'",
                "CREATE INDEX video_calls_open ON video_calls (state, ring_until) WHERE state <> 'ended'",
                """
                CREATE TABLE call_participants (
                    call_id TEXT NOT NULL REFERENCES video_calls(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL,
                    role TEXT NOT NULL,
                    state TEXT NOT NULL,
                    media TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    invited_at \(t.bigint) NOT NULL,
                    joined_at \(t.bigint) NOT NULL,
                    left_at \(t.bigint) NOT NULL,
                    seen_at \(t.bigint) NOT NULL,
                    connected_ms \(t.bigint) NOT NULL,
                    PRIMARY KEY (call_id, user_id)
                )
                """,
                "CREATE INDEX call_participants_joined ON call_participants (user_id) WHERE state = 'joined'",
            ]
        },
        // Download tickets for share links: `open` issues one after checking the access value; the
        // first content request under it counts one download, and it delivers less than two
        // copies of the file's bytes in all (a byte budget, refunded for bytes a broken connection
        // never took), so no sequence of ranges obtains more copies than the link allows. The
        // ticket is kept as its hash.
        Migration(version: 12, name: "link-tickets", owner: "vault") { t in
            [
                """
                CREATE TABLE vault_link_tickets (
                    id TEXT PRIMARY KEY,
                    link_id TEXT NOT NULL REFERENCES vault_links(id) ON DELETE CASCADE,
                    expires_at \(t.bigint) NOT NULL,
                    counted \(t.bigint) NOT NULL,
                    budget \(t.bigint) NOT NULL
                )
                """,
                "CREATE INDEX vault_link_tickets_link ON vault_link_tickets (link_id, expires_at)",
                "CREATE INDEX vault_link_tickets_expiry ON vault_link_tickets (expires_at)",
            ]
        },
        // The destruction protocol (ARCHITECTURE 8): one row per job with its step and progress,
        // claimed by one cleanup replica at a time under a lease; the blobs of destroyed files
        // wait in `destruction_blobs` (their rows are gone in the job's first transaction, so
        // nothing serves them), and the session's last re-authentication gates every request.
        Migration(version: 13, name: "destruction", owner: "cleanup") { t in
            [
                """
                CREATE TABLE destruction_jobs (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    requested_by TEXT NOT NULL,
                    watch_hash TEXT NOT NULL,
                    state TEXT NOT NULL,
                    step TEXT NOT NULL,
                    progress TEXT NOT NULL,
                    created_at \(t.bigint) NOT NULL,
                    updated_at \(t.bigint) NOT NULL,
                    finished_at \(t.bigint) NOT NULL,
                    unreadable_at \(t.bigint) NOT NULL,
                    runner TEXT NOT NULL,
                    lease_until \(t.bigint) NOT NULL
                )
                """,
                "CREATE INDEX destruction_jobs_open ON destruction_jobs (state, lease_until) WHERE state <> 'done'",
                "CREATE INDEX destruction_jobs_requester ON destruction_jobs (requested_by, created_at)",
                "CREATE UNIQUE INDEX destruction_jobs_live ON destruction_jobs (kind, subject) WHERE state <> 'done'",
                """
                CREATE TABLE destruction_blobs (
                    job_id TEXT NOT NULL REFERENCES destruction_jobs(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    PRIMARY KEY (job_id, name)
                )
                """,
                // A destroyed account's messages and envelopes are found by their sender.
                "CREATE INDEX messages_sender ON messages (sender_id)",
                "CREATE INDEX key_envelopes_sender ON key_envelopes (sender_id)",
                "ALTER TABLE sessions ADD COLUMN reauthenticated_at \(t.bigint) NOT NULL DEFAULT 0",
                "ALTER TABLE users ADD COLUMN destroyed_at \(t.bigint) NOT NULL DEFAULT 0",
            ]
        },
        // A share link's refused opens, one row per address (how many, first and last), so
        // guesses cost one row however many there are and never push a real use out of the
        // history; `vault_link_uses` keeps every successful use.
        Migration(version: 14, name: "link-failures", owner: "vault") { t in
            [
                """
                CREATE TABLE vault_link_failures (
                    link_id TEXT NOT NULL REFERENCES vault_links(id) ON DELETE CASCADE,
                    ip TEXT NOT NULL,
                    attempts \(t.bigint) NOT NULL,
                    first_at \(t.bigint) NOT NULL,
                    last_at \(t.bigint) NOT NULL,
                    PRIMARY KEY (link_id, ip)
                )
                """,
                """
                INSERT INTO vault_link_failures (link_id, ip, attempts, first_at, last_at)
                SELECT link_id, ip, COUNT(*), MIN(at), MAX(at) FROM vault_link_uses WHERE outcome = 'refused' GROUP BY link_id, ip
                """,
                "DELETE FROM vault_link_uses WHERE outcome = 'refused'",
            ]
        },
        // The writer of an unfinished upload holds a lease on its row (who, until when), so two
        // vault replicas never write one upload at once, and a writer whose lease lapsed cannot
        // move its offset or finish it.
        Migration(version: 15, name: "upload-leases", owner: "vault") { t in
            [
                "ALTER TABLE vault_uploads ADD COLUMN lease_token TEXT",
                "ALTER TABLE vault_uploads ADD COLUMN lease_until \(t.bigint)",
            ]
        },
        // Invitations managed from the browser: an id to list and revoke them by (the code itself
        // is never stored), the admin's note, who made it, and when it was revoked.
        Migration(version: 16, name: "invite-management", owner: "gateway") { t in
            [
                "ALTER TABLE invites ADD COLUMN id TEXT",
                "ALTER TABLE invites ADD COLUMN note TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE invites ADD COLUMN created_by TEXT",
                "ALTER TABLE invites ADD COLUMN revoked_at \(t.bigint)",
                "UPDATE invites SET id = substr(code_hash, 1, 22) WHERE id IS NULL",
                "CREATE UNIQUE INDEX invites_id ON invites (id)",
            ]
        },
        // The web origin a member's login keys are bound to (PROTOCOL 2); NULL for an account
        // made before the binding, which its next sign-in binds.
        Migration(version: 17, name: "login-origin", owner: "gateway") { _ in
            ["ALTER TABLE users ADD COLUMN login_origin TEXT"]
        },
        // When a file was last downloaded (its creation until then), for `vault.idleFileRetention`.
        Migration(version: 18, name: "file-access", owner: "vault") { t in
            [
                "ALTER TABLE vault_files ADD COLUMN accessed_at \(t.bigint) NOT NULL DEFAULT 0",
                "UPDATE vault_files SET accessed_at = created_at",
                "CREATE INDEX vault_files_accessed ON vault_files (accessed_at)",
            ]
        },
        // The whole server's destruction from the browser waits for a second admin's approval
        // when there is one: who approved, and the approver's own token to follow the job.
        Migration(version: 19, name: "destruction-approval", owner: "cleanup") { _ in
            [
                "ALTER TABLE destruction_jobs ADD COLUMN approved_by TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE destruction_jobs ADD COLUMN approver_watch_hash TEXT NOT NULL DEFAULT ''",
            ]
        },
        // A conversation's retention (a signed settings op): messages received longer ago than
        // this many days are no longer served and are swept by circle-cleanup (0: kept).
        Migration(version: 20, name: "conversation-retention", owner: "messaging") { t in
            [
                "ALTER TABLE conversations ADD COLUMN retention_days \(t.bigint) NOT NULL DEFAULT 0",
                "CREATE INDEX conversations_retention ON conversations (retention_days) WHERE retention_days > 0",
            ]
        },
    ]

    /// The schema version this build expects.
    public static var latestVersion: Int { all.last?.version ?? 0 }
}
