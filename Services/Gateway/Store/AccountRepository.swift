import CircleCore
import CircleStore
import Crypto
import Foundation
import SQLKit

/// A member as the gateway stores them.
package struct UserRecord: Sendable {
    package let id: String
    package let username: String
    package let displayName: String
    package let verifier: [UInt8]
    package let salt: [UInt8]
    package let identityKey: [UInt8]
    package let x25519Key: [UInt8]
    package let kxCert: [UInt8]
    package let isAdmin: Bool
    /// The member destroyed the account: no sign-in, shown to others as "left the Circle".
    package let isDestroyed: Bool
    /// The web origin the login keys are bound to (PROTOCOL 2); nil for an account made before.
    package let loginOrigin: String?

    package init(id: String, username: String, displayName: String, verifier: [UInt8], salt: [UInt8], identityKey: [UInt8], x25519Key: [UInt8], kxCert: [UInt8], isAdmin: Bool,
                 isDestroyed: Bool = false, loginOrigin: String? = nil) {
        self.loginOrigin = loginOrigin
        self.id = id
        self.username = username
        self.displayName = displayName
        self.verifier = verifier
        self.salt = salt
        self.identityKey = identityKey
        self.x25519Key = x25519Key
        self.kxCert = kxCert
        self.isAdmin = isAdmin
        self.isDestroyed = isDestroyed
    }
}

/// A session as listed to its owner.
package struct SessionRecord: Sendable, Codable, Equatable {
    package let id: String
    package let deviceLabel: String
    package let ip: String
    package let createdAt: Int64
    package let lastSeenAt: Int64

    package init(id: String, deviceLabel: String, ip: String, createdAt: Int64, lastSeenAt: Int64) {
        self.id = id
        self.deviceLabel = deviceLabel
        self.ip = ip
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
    }
}

/// SQL for the gateway's tables (users, key_bundles, invites, sessions). The gateway is their
/// only writer; every function runs on the connection or transaction it is handed.
package enum AccountRepository {
    package static func user(named username: String, in db: any SQLDatabase) async throws -> UserRecord? {
        try await db.raw("SELECT * FROM users WHERE username = \(bind: username)").first().map(decodeUser)
    }

    /// The member who may sign in under this name: a destroyed account answers like an unknown name.
    package static func signInUser(named username: String, in db: any SQLDatabase) async throws -> UserRecord? {
        try await user(named: username, in: db).flatMap { $0.isDestroyed ? nil : $0 }
    }

    package static func user(id: String, in db: any SQLDatabase) async throws -> UserRecord? {
        try await db.raw("SELECT * FROM users WHERE id = \(bind: id)").first().map(decodeUser)
    }

    package static func userCount(in db: any SQLDatabase) async throws -> Int {
        try await db.raw("SELECT COUNT(*) AS n FROM users").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    package static func decodeUser(_ row: any SQLRow) throws -> UserRecord {
        UserRecord(
            id: try row.decode(column: "id", as: String.self),
            username: try row.decode(column: "username", as: String.self),
            displayName: try row.decode(column: "display_name", as: String.self),
            verifier: Array(try row.decode(column: "auth_verifier", as: Data.self)),
            salt: Array(try row.decode(column: "salt", as: Data.self)),
            identityKey: Array(try row.decode(column: "identity_key", as: Data.self)),
            x25519Key: Array(try row.decode(column: "x25519_key", as: Data.self)),
            kxCert: Array(try row.decode(column: "kx_cert", as: Data.self)),
            isAdmin: try row.decode(column: "is_admin", as: Int64.self) != 0,
            isDestroyed: try row.decode(column: "destroyed_at", as: Int64.self) != 0,
            loginOrigin: try row.decode(column: "login_origin", as: String?.self)
        )
    }

    package static func insertUser(_ user: UserRecord, bundle: [UInt8], recoveryBundle: [UInt8], recoveryVerifier: [UInt8], at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO users (id, username, display_name, auth_verifier, salt, identity_key, x25519_key, kx_cert, is_admin, created_at, updated_at, login_origin)
            VALUES (\(bind: user.id), \(bind: user.username), \(bind: user.displayName), \(bind: Data(user.verifier)), \(bind: Data(user.salt)),
                    \(bind: Data(user.identityKey)), \(bind: Data(user.x25519Key)), \(bind: Data(user.kxCert)), \(bind: user.isAdmin ? 1 : 0),
                    \(bind: now.millis), \(bind: now.millis), \(bind: user.loginOrigin))
            """).run()
        try await db.raw("""
            INSERT INTO key_bundles (user_id, bundle, recovery_bundle, recovery_verifier, version, updated_at)
            VALUES (\(bind: user.id), \(bind: Data(bundle)), \(bind: Data(recoveryBundle)), \(bind: Data(recoveryVerifier)), 1, \(bind: now.millis))
            """).run()
    }

    package struct StoredBundles: Sendable {
        package let bundle: [UInt8]
        package let recoveryBundle: [UInt8]
        package let recoveryVerifier: [UInt8]
        package let version: Int64

        package init(bundle: [UInt8], recoveryBundle: [UInt8], recoveryVerifier: [UInt8], version: Int64) {
            self.bundle = bundle
            self.recoveryBundle = recoveryBundle
            self.recoveryVerifier = recoveryVerifier
            self.version = version
        }
    }

    package static func bundles(userId: String, in db: any SQLDatabase) async throws -> StoredBundles? {
        guard let row = try await db.raw("SELECT * FROM key_bundles WHERE user_id = \(bind: userId)").first() else { return nil }
        return StoredBundles(
            bundle: Array(try row.decode(column: "bundle", as: Data.self)),
            recoveryBundle: Array(try row.decode(column: "recovery_bundle", as: Data.self)),
            recoveryVerifier: Array(try row.decode(column: "recovery_verifier", as: Data.self)),
            version: try row.decode(column: "version", as: Int64.self)
        )
    }

    /// Replaces the login secret and bundles at once (password change, recovery, binding an older
    /// account's keys to its origin); `origin` is the one the new keys are bound to.
    package static func replaceCredentials(userId: String, verifier: [UInt8], salt: [UInt8], origin: String?, bundle: [UInt8], recoveryBundle: [UInt8]?, recoveryVerifier: [UInt8]?,
                                           at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE users SET auth_verifier = \(bind: Data(verifier)), salt = \(bind: Data(salt)), login_origin = \(bind: origin), updated_at = \(bind: now.millis)
            WHERE id = \(bind: userId)
            """).run()
        try await db.raw("UPDATE key_bundles SET bundle = \(bind: Data(bundle)), version = version + 1, updated_at = \(bind: now.millis) WHERE user_id = \(bind: userId)").run()
        if let recoveryBundle, let recoveryVerifier {
            try await db.raw("UPDATE key_bundles SET recovery_bundle = \(bind: Data(recoveryBundle)), recovery_verifier = \(bind: Data(recoveryVerifier)) WHERE user_id = \(bind: userId)").run()
        }
    }

    // MARK: Invites

    package static func inviteHash(_ code: String) -> String {
        Hex.encode(SHA256.hash(data: Data(code.utf8)))
    }

    package static func createInvite(
        code: String, id: String = Base64URL.encode(SecureRandom.bytes(16)), grantsAdmin: Bool, note: String = "", createdBy: String? = nil,
        expiresAt: Timestamp, at now: Timestamp, in db: any SQLDatabase
    ) async throws {
        try await db.raw("""
            INSERT INTO invites (code_hash, id, grants_admin, note, created_by, created_at, expires_at)
            VALUES (\(bind: inviteHash(code)), \(bind: id), \(bind: grantsAdmin ? 1 : 0), \(bind: note), \(bind: createdBy),
                    \(bind: now.millis), \(bind: expiresAt.millis))
            """).run()
    }

    /// Marks the invite used by `userId` if it is unused, unrevoked and unexpired; returns whether
    /// it grants admin, or nil when it cannot be used. Atomic: two registrations cannot share one.
    package static func consumeInvite(code: String, by userId: String, at now: Timestamp, in db: any SQLDatabase) async throws -> Bool? {
        let row = try await db.raw("""
            UPDATE invites SET used_at = \(bind: now.millis), used_by = \(bind: userId)
            WHERE code_hash = \(bind: inviteHash(code)) AND used_at IS NULL AND revoked_at IS NULL AND expires_at > \(bind: now.millis)
            RETURNING grants_admin
            """).first()
        return try row.map { try $0.decode(column: "grants_admin", as: Int64.self) != 0 }
    }

    /// What an invite code is now, and until when it is usable; unknown codes are `.unknown`.
    package static func inviteState(code: String, at now: Timestamp, in db: any SQLDatabase) async throws -> (state: InviteState, expiresAt: Int64?) {
        guard let row = try await db.raw("""
            SELECT \(unsafeRaw: inviteColumns) WHERE i.code_hash = \(bind: inviteHash(code))
            """).first() else { return (.unknown, nil) }
        let invite = try decodeInvite(row)
        return (invite.state(at: now), invite.expiresAt)
    }

    /// The newest invites first (at most `limit`), with who used each.
    package static func invites(limit: Int, in db: any SQLDatabase) async throws -> [InviteRecord] {
        try await db.raw("""
            SELECT \(unsafeRaw: inviteColumns) ORDER BY i.created_at DESC, i.id LIMIT \(bind: limit)
            """).all().map(decodeInvite)
    }

    /// Revokes an invite nobody used yet; returns its state before (nil: no such invite).
    package static func revokeInvite(id: String, at now: Timestamp, in db: any SQLDatabase) async throws -> InviteState? {
        guard let row = try await db.raw("SELECT \(unsafeRaw: inviteColumns) WHERE i.id = \(bind: id)").first() else { return nil }
        let state = try decodeInvite(row).state(at: now)
        if state == .usable || state == .expired {
            try await db.raw("UPDATE invites SET revoked_at = \(bind: now.millis) WHERE id = \(bind: id) AND used_at IS NULL AND revoked_at IS NULL").run()
        }
        return state
    }

    /// The columns every invite query reads, with who used it (the caller adds WHERE / ORDER BY).
    static let inviteColumns = """
        i.id, i.grants_admin, i.note, i.created_by, i.created_at, i.expires_at, i.used_at, i.used_by, i.revoked_at,
        u.username AS used_by_name, u.display_name AS used_by_display
        FROM invites i LEFT JOIN users u ON u.id = i.used_by
        """

    static func decodeInvite(_ row: any SQLRow) throws -> InviteRecord {
        InviteRecord(
            id: try row.decode(column: "id", as: String.self),
            grantsAdmin: try row.decode(column: "grants_admin", as: Int64.self) != 0,
            note: try row.decode(column: "note", as: String.self),
            createdBy: try row.decode(column: "created_by", as: String?.self),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            expiresAt: try row.decode(column: "expires_at", as: Int64.self),
            usedAt: try row.decode(column: "used_at", as: Int64?.self),
            usedBy: try row.decode(column: "used_by", as: String?.self),
            usedByName: try row.decode(column: "used_by_name", as: String?.self),
            usedByDisplayName: try row.decode(column: "used_by_display", as: String?.self),
            revokedAt: try row.decode(column: "revoked_at", as: Int64?.self)
        )
    }

    // MARK: Sessions

    package static func insertSession(id: String, tokenHash: String, userId: String, deviceLabel: String, ip: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO sessions (id, token_hash, user_id, device_label, ip, created_at, last_seen_at)
            VALUES (\(bind: id), \(bind: tokenHash), \(bind: userId), \(bind: deviceLabel), \(bind: ip), \(bind: now.millis), \(bind: now.millis))
            """).run()
    }

    package static func liveSessions(userId: String, in db: any SQLDatabase) async throws -> [SessionRecord] {
        try await db.raw("""
            SELECT id, device_label, ip, created_at, last_seen_at FROM sessions
            WHERE user_id = \(bind: userId) AND revoked_at IS NULL ORDER BY created_at, id
            """).all().map {
            SessionRecord(
                id: try $0.decode(column: "id", as: String.self),
                deviceLabel: try $0.decode(column: "device_label", as: String.self),
                ip: try $0.decode(column: "ip", as: String.self),
                createdAt: try $0.decode(column: "created_at", as: Int64.self),
                lastSeenAt: try $0.decode(column: "last_seen_at", as: Int64.self)
            )
        }
    }

    /// Revokes the user's live sessions matching the filter; returns the ids revoked.
    package static func revokeSessions(userId: String, only: String? = nil, except: String? = nil, at now: Timestamp, in db: any SQLDatabase) async throws -> [String] {
        var query = SQLQueryString("UPDATE sessions SET revoked_at = \(bind: now.millis) WHERE user_id = \(bind: userId) AND revoked_at IS NULL")
        if let only { query += " AND id = \(bind: only)" }
        if let except { query += " AND id <> \(bind: except)" }
        query += " RETURNING id"
        return try await db.raw(query).all().map { try $0.decode(column: "id", as: String.self) }
    }

    package static func touchSession(id: String, ip: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE sessions SET last_seen_at = \(bind: now.millis), ip = \(bind: ip) WHERE id = \(bind: id) AND revoked_at IS NULL").run()
    }

    /// Which of these sessions are still live.
    package static func liveSessionIds(among ids: [String], in db: any SQLDatabase) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        var query = SQLQueryString("SELECT id FROM sessions WHERE revoked_at IS NULL AND id IN (")
        for (index, id) in ids.enumerated() {
            if index > 0 { query += ", " }
            query += "\(bind: id)"
        }
        query += ")"
        return Set(try await db.raw(query).all().map { try $0.decode(column: "id", as: String.self) })
    }
}

/// Where an invite stands.
package enum InviteState: String, Codable, Sendable {
    case usable, used, expired, revoked, unknown
}

/// One invite as admins see it (never its code).
package struct InviteRecord: Sendable {
    package let id: String
    package let grantsAdmin: Bool
    package let note: String
    package let createdBy: String?
    package let createdAt: Int64
    package let expiresAt: Int64
    package let usedAt: Int64?
    package let usedBy: String?
    package let usedByName: String?
    package let usedByDisplayName: String?
    package let revokedAt: Int64?

    package func state(at now: Timestamp) -> InviteState {
        if usedAt != nil { return .used }
        if revokedAt != nil { return .revoked }
        return expiresAt > now.millis ? .usable : .expired
    }
}
