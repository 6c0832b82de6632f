import CircleActivity
import CircleCore
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import GatewayStore
import Hummingbird
import SQLKit

/// `/api/v1/account/*`: the signed-in member's profile, sessions and password.
struct AccountController: Sendable {
    let state: GatewayState

    struct Me: Codable, Sendable {
        let userId: String
        let username: String
        let displayName: String
        let isAdmin: Bool
        let sessionId: String
    }

    struct SessionView: Codable, Sendable {
        let id: String
        let deviceLabel: String
        let ip: String
        let createdAt: Int64
        let lastSeenAt: Int64
        /// When it ends unless used again (idle timeout) or at the latest (maximum age).
        let expiresAt: Int64
        let current: Bool
    }

    struct Sessions: Codable, Sendable { let sessions: [SessionView] }
    struct Revoked: Codable, Sendable { let revoked: [String] }

    struct PasswordRequest: StrictDecodable, Sendable {
        let currentAuthKey: String
        let authKey: String
        let salt: String
        let bundle: String
        let recoveryBundle: String?
        let recoveryAuthKey: String?
        let origin: String?
        static let allowedKeys: Set<String> = ["currentAuthKey", "authKey", "salt", "bundle", "recoveryBundle", "recoveryAuthKey", "origin"]
    }

    struct BindLoginRequest: StrictDecodable, Sendable {
        let currentAuthKey: String
        let authKey: String
        let salt: String
        let bundle: String
        let origin: String
        static let allowedKeys: Set<String> = ["currentAuthKey", "authKey", "salt", "bundle", "origin"]
    }

    struct LoginBound: Codable, Sendable { let bundleVersion: Int64; let origin: String }

    struct PasswordChanged: Codable, Sendable { let bundleVersion: Int64; let revoked: [String] }

    struct ReauthenticateRequest: StrictDecodable, Sendable {
        let authKey: String
        static let allowedKeys: Set<String> = ["authKey"]
    }

    struct Reauthenticated: Codable, Sendable { let until: Int64 }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/account")
        group.get("/me", use: me)
        group.get("/sessions", use: sessions)
        group.delete("/sessions/{id}", use: revoke)
        group.post("/sessions/revoke-others", use: revokeOthers)
        group.post("/password", use: changePassword)
        group.post("/login-origin", use: bindLogin)
        group.post("/reauthenticate", use: reauthenticate)
    }

    @Sendable func me(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Me> {
        let identity = context.identity
        await state.activity.seen(sessionId: identity.sessionId, ip: state.address(request, context))
        guard let user = try await state.store.read({ db in try await AccountRepository.user(id: identity.userId, in: db) }) else {
            throw Problem.unauthorized()
        }
        return JSONResponse(Me(userId: user.id, username: user.username, displayName: user.displayName, isAdmin: user.isAdmin, sessionId: identity.sessionId))
    }

    @Sendable func sessions(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Sessions> {
        let identity = context.identity
        await state.activity.seen(sessionId: identity.sessionId, ip: state.address(request, context))
        let records = try await state.store.read { db in try await AccountRepository.liveSessions(userId: identity.userId, in: db) }
        let lifetime = state.sessions.lifetime
        let now = state.clock.now().millis
        return JSONResponse(Sessions(sessions: records.compactMap {
            let expiresAt = SessionValidator.expiry(createdAt: $0.createdAt, lastSeenAt: $0.lastSeenAt, lifetime: lifetime)
            guard expiresAt > now else { return nil }
            return SessionView(id: $0.id, deviceLabel: $0.deviceLabel, ip: $0.ip, createdAt: $0.createdAt, lastSeenAt: $0.lastSeenAt,
                               expiresAt: expiresAt, current: $0.id == identity.sessionId)
        }))
    }

    /// Revokes one of the caller's sessions; another user's session id is simply not found.
    @Sendable func revoke(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let sessionId = try context.parameters.require("id")
        let now = state.clock.now()
        let ip = state.address(request, context)
        let userAgent = state.userAgent(request)
        let result = try await state.store.write { db in
            let recorded = try await state.record([
                ActivityItem(chain: identity.userId, kind: .sessionRevoked, sessionId: identity.sessionId, ip: ip, userAgent: userAgent,
                             details: ["revoked": sessionId]),
            ], at: now, in: db)
            let revoked = try await state.revokeSessions(userId: identity.userId, only: sessionId, at: now, in: db)
            // Nothing was revoked: no entry either (the transaction rolls back).
            guard !revoked.ids.isEmpty else { throw Problem.notFound("No such session.") }
            return (revoked, recorded)
        }
        await state.sessions.announceRevoked(result.0.ids)
        await state.publish(result.1, alongside: result.0.events)
        return Response(status: .noContent)
    }

    @Sendable func revokeOthers(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Revoked> {
        let identity = context.identity
        let now = state.clock.now()
        let ip = state.address(request, context)
        let userAgent = state.userAgent(request)
        let result = try await state.store.write { db in
            let revoked = try await state.revokeSessions(userId: identity.userId, except: identity.sessionId, at: now, in: db)
            let recorded = try await state.record(revoked.ids.map {
                ActivityItem(chain: identity.userId, kind: .sessionRevoked, sessionId: identity.sessionId, ip: ip, userAgent: userAgent, details: ["revoked": $0])
            }, at: now, in: db)
            return (revoked, recorded)
        }
        await state.sessions.announceRevoked(result.0.ids)
        await state.publish(result.1, alongside: result.0.events)
        return JSONResponse(Revoked(revoked: result.0.ids))
    }

    /// Checks the caller's current authKey, counted against the sign-in throttle like a login; a
    /// wrong one is recorded as a failed sign-in (`method`) and answered 403 with `wrong`.
    private func proveCurrentKey(_ authKey: [UInt8], method: String, wrong: String, request: Request,
                                 context: AuthenticatedContext) async throws -> (user: UserRecord, ip: String, userAgent: String) {
        let identity = context.identity
        guard let user = try await state.store.read({ db in try await AccountRepository.user(id: identity.userId, in: db) }) else {
            throw Problem.unauthorized()
        }
        let ip = state.address(request, context)
        let attempt = try await state.throttle.admit(username: user.username, address: ip)
        let userAgent = state.userAgent(request)
        guard state.crypto.matches(authKey: authKey, stored: user.verifier) else {
            await state.record([ActivityItem(chain: user.id, kind: .signInFailed, sessionId: identity.sessionId, ip: ip, userAgent: userAgent,
                                             details: ["method": method])])
            throw Problem.forbidden(wrong)
        }
        await state.throttle.succeeded(attempt, userId: user.id)
        return (user, ip, userAgent)
    }

    /// Proves the password again: for the next 5 minutes this session may ask for what cannot be
    /// undone (the destruction protocol). Wrong keys count against the sign-in throttle.
    @Sendable func reauthenticate(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Reauthenticated> {
        let identity = context.identity
        let body = try await request.decodeJSON(as: ReauthenticateRequest.self, context: context)
        let authKey = Base64URL.decode(body.authKey).map(Array.init) ?? []
        _ = try await proveCurrentKey(authKey, method: "re-authentication", wrong: "The password is wrong.", request: request, context: context)
        let now = state.clock.now()
        try await state.store.write { db in try await Reauthentication.record(sessionId: identity.sessionId, at: now, in: db) }
        return JSONResponse(Reauthenticated(until: now.millis + Reauthentication.window))
    }

    /// Replaces the login secret and bundle after proving the current password; every other
    /// session of the account ends.
    @Sendable func changePassword(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<PasswordChanged> {
        let identity = context.identity
        let body = try await request.decodeJSON(as: PasswordRequest.self, context: context)
        let current = Base64URL.decode(body.currentAuthKey).map(Array.init) ?? []
        let authKey = try AccountRules.bytes("authKey", body.authKey, count: AccountRules.authKeyBytes)
        let salt = try AccountRules.bytes("salt", body.salt, count: AccountRules.saltBytes)
        let bundle = try AccountRules.blob("bundle", body.bundle)
        let recoveryBundle = try body.recoveryBundle.map { try AccountRules.blob("recoveryBundle", $0) }
        let recoveryAuthKey = try body.recoveryAuthKey.map { try AccountRules.bytes("recoveryAuthKey", $0, count: AccountRules.authKeyBytes) }
        guard (recoveryBundle == nil) == (recoveryAuthKey == nil) else {
            throw Problem.invalidField("recoveryBundle", "a new recovery bundle and recoveryAuthKey go together")
        }
        let origin = try body.origin.map { try AccountRules.origin($0) }
        let (user, ip, userAgent) = try await proveCurrentKey(current, method: "password change", wrong: "The current password is wrong.",
                                                              request: request, context: context)
        let crypto = state.crypto
        let now = state.clock.now()
        let result = try await state.store.write { db in
            let recorded = try await state.record([
                ActivityItem(chain: user.id, kind: .passwordChanged, sessionId: identity.sessionId, ip: ip, userAgent: userAgent, alert: true),
            ], at: now, in: db)
            try await AccountRepository.replaceCredentials(
                userId: user.id, verifier: crypto.verifier(for: authKey), salt: salt, origin: origin,
                bundle: try crypto.wrap(bundle, userId: user.id, kind: .main),
                recoveryBundle: try recoveryBundle.map { try crypto.wrap($0, userId: user.id, kind: .recovery) },
                recoveryVerifier: recoveryAuthKey.map { crypto.verifier(for: $0) }, at: now, in: db
            )
            let revoked = try await state.revokeSessions(userId: user.id, except: identity.sessionId, at: now, in: db)
            let changed = try await UserEventLog.append([NewUserEvent(userId: user.id, type: .passwordChanged, data: "{}")], at: now, in: db)
            let version = try await AccountRepository.bundles(userId: user.id, in: db)?.version ?? 0
            return (revoked.ids, revoked.events + changed, version, recorded)
        }
        await state.sessions.announceRevoked(result.0)
        await state.publish(result.3, alongside: result.1)
        return JSONResponse(PasswordChanged(bundleVersion: result.2, revoked: result.0))
    }

    /// Binds an older account's login keys to the origin its member signs in at (PROTOCOL 2):
    /// the same password derived again with the origin, after proving the current one. Sessions
    /// stay (the password did not change); an account already bound gets 409.
    @Sendable func bindLogin(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<LoginBound> {
        let identity = context.identity
        let body = try await request.decodeJSON(as: BindLoginRequest.self, context: context)
        let current = Base64URL.decode(body.currentAuthKey).map(Array.init) ?? []
        let authKey = try AccountRules.bytes("authKey", body.authKey, count: AccountRules.authKeyBytes)
        let salt = try AccountRules.bytes("salt", body.salt, count: AccountRules.saltBytes)
        let bundle = try AccountRules.blob("bundle", body.bundle)
        let origin = try AccountRules.origin(body.origin)
        let (user, ip, userAgent) = try await proveCurrentKey(current, method: "sign-in binding", wrong: "The current password is wrong.",
                                                              request: request, context: context)
        guard user.loginOrigin == nil else { throw Problem.conflict("This account's sign-in is already bound to \(user.loginOrigin ?? "")") }
        let crypto = state.crypto
        let now = state.clock.now()
        let result = try await state.store.write { db in
            let recorded = try await state.record([
                ActivityItem(chain: user.id, kind: .loginBound, sessionId: identity.sessionId, ip: ip, userAgent: userAgent, details: ["origin": origin]),
            ], at: now, in: db)
            try await AccountRepository.replaceCredentials(
                userId: user.id, verifier: crypto.verifier(for: authKey), salt: salt, origin: origin,
                bundle: try crypto.wrap(bundle, userId: user.id, kind: .main), recoveryBundle: nil, recoveryVerifier: nil, at: now, in: db
            )
            return (try await AccountRepository.bundles(userId: user.id, in: db)?.version ?? 0, recorded)
        }
        await state.publish(result.1, alongside: [])
        return JSONResponse(LoginBound(bundleVersion: result.0, origin: origin))
    }
}

/// `/api/v1/directory/*`: members' public profiles and keys, for signed-in members.
struct DirectoryController: Sendable {
    let state: GatewayState

    struct Entry: Codable, Sendable {
        let userId: String
        let username: String
        let displayName: String
        let identityKey: String
        let x25519Key: String
        let kxCert: String
        /// The member destroyed their account ("left the Circle"); the keys still verify what they signed.
        let left: Bool
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/directory")
        group.get("/users/{id}", use: byId)
        group.get("/usernames/{name}", use: byName)
    }

    @Sendable func byId(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Entry> {
        let id = try context.parameters.require("id")
        try await state.rateLimiter.check(.directoryId, for: context.identity.userId)
        return try await entry { db in try await AccountRepository.user(id: id, in: db) }
    }

    @Sendable func byName(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Entry> {
        let name = AccountRules.lookupName(try context.parameters.require("name"))
        // Each answer tells whether a name exists: the limit keeps that from becoming a list.
        try await state.rateLimiter.check(.directoryName, for: context.identity.userId)
        return try await entry { db in try await AccountRepository.user(named: name, in: db) }
    }

    private func entry(_ find: @escaping @Sendable (any SQLDatabase) async throws -> UserRecord?) async throws -> JSONResponse<Entry> {
        guard let user = try await state.store.read(find) else { throw Problem.notFound("No such member.") }
        return JSONResponse(Entry(
            userId: user.id, username: user.username, displayName: user.displayName,
            identityKey: Base64URL.encode(user.identityKey), x25519Key: Base64URL.encode(user.x25519Key), kxCert: Base64URL.encode(user.kxCert),
            left: user.isDestroyed
        ))
    }
}

