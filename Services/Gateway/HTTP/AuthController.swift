import CircleActivity
import CircleCore
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import GatewayStore
import Hummingbird
import Metrics
import SQLKit

/// `/api/v1/auth/*`: prelogin, register, login, logout and recovery (PROTOCOL 2).
struct AuthController: Sendable {
    let state: GatewayState

    struct PreloginRequest: StrictDecodable, Sendable {
        let username: String
        static let allowedKeys: Set<String> = ["username"]
    }

    struct KDF: Codable, Sendable { let name: String; let iterations: Int }

    struct PreloginResponse: Codable, Sendable {
        let serverId: String
        let username: String
        let salt: String
        let kdf: KDF
        /// The origin the account's login keys are bound to; absent for an older, unbound account.
        let origin: String?
    }

    struct RegisterRequest: StrictDecodable, Sendable {
        let invite: String?
        let userId: String
        let username: String
        let displayName: String
        let authKey: String
        let salt: String
        let bundle: String
        let recoveryBundle: String
        let recoveryAuthKey: String
        let identityKey: String
        let x25519Key: String
        let kxCert: String
        let deviceLabel: String?
        let origin: String?
        static let allowedKeys: Set<String> = [
            "invite", "userId", "username", "displayName", "authKey", "salt", "bundle", "recoveryBundle",
            "recoveryAuthKey", "identityKey", "x25519Key", "kxCert", "deviceLabel", "origin",
        ]
    }

    struct LoginRequest: StrictDecodable, Sendable {
        let username: String
        let authKey: String
        let deviceLabel: String?
        static let allowedKeys: Set<String> = ["username", "authKey", "deviceLabel"]
    }

    struct Profile: Codable, Sendable {
        let userId: String
        let username: String
        let displayName: String
        let isAdmin: Bool
    }

    struct SessionResponse: Codable, Sendable {
        let token: String
        let sessionId: String
        let user: Profile
        let bundle: String
        let bundleVersion: Int64
    }

    struct RecoveryRequest: StrictDecodable, Sendable {
        let username: String
        let recoveryAuthKey: String
        static let allowedKeys: Set<String> = ["username", "recoveryAuthKey"]
    }

    struct RecoveryResponse: Codable, Sendable {
        let userId: String
        let recoveryBundle: String
    }

    struct RecoveryResetRequest: StrictDecodable, Sendable {
        let username: String
        let recoveryAuthKey: String
        let authKey: String
        let salt: String
        let bundle: String
        let recoveryBundle: String?
        let newRecoveryAuthKey: String?
        let deviceLabel: String?
        let origin: String?
        static let allowedKeys: Set<String> = ["username", "recoveryAuthKey", "authKey", "salt", "bundle", "recoveryBundle", "newRecoveryAuthKey", "deviceLabel", "origin"]
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.group("/api/v1/auth").add(middleware: ServerLockdownMiddleware(store: state.store, startedAt: state.clock.now()))
        group.post("/prelogin", use: prelogin)
        group.post("/register", use: register)
        group.post("/login", use: login)
        router.authenticated("/api/v1/auth").post("/logout", use: logout)
        group.post("/recovery", use: recovery)
        group.post("/recovery/reset", use: recoveryReset)
    }

    /// Salt, KDF and bound origin for a username; an unknown name gets a stable fake salt and the
    /// origin it was asked from, as an account made there would.
    @Sendable func prelogin(request: Request, context: CircleRequestContext) async throws -> JSONResponse<PreloginResponse> {
        let body = try await request.decodeJSON(as: PreloginRequest.self, context: context)
        try await state.rateLimiter.check(.prelogin, for: state.address(request, context))
        let name = AccountRules.lookupName(body.username)
        let user = try await state.store.read { db in try await AccountRepository.signInUser(named: name, in: db) }
        let salt = user?.salt ?? state.crypto.fakeSalt(forUsername: name)
        let origin = user.map { $0.loginOrigin } ?? Self.askingOrigin(request)
        return JSONResponse(PreloginResponse(
            serverId: try await state.serverID.value(), username: name, salt: Base64URL.encode(salt),
            kdf: KDF(name: AccountRules.kdfName, iterations: AccountRules.kdfIterations), origin: origin
        ))
    }

    /// The origin a request came from: its `Origin` header (browsers), else its `Host` over http.
    static func askingOrigin(_ request: Request) -> String? {
        if let origin = request.headers[.origin], let parsed = AccountRules.parseOrigin(origin) { return parsed }
        return request.head.authority.flatMap { AccountRules.parseOrigin("http://" + $0.lowercased()) }
    }

    @Sendable func register(request: Request, context: CircleRequestContext) async throws -> JSONResponse<SessionResponse> {
        let body = try await request.decodeJSON(as: RegisterRequest.self, context: context)
        let userId = try AccountRules.userId(body.userId)
        let username = try AccountRules.normalizeUsername(body.username)
        let displayName = try AccountRules.displayName(body.displayName)
        let authKey = try AccountRules.bytes("authKey", body.authKey, count: AccountRules.authKeyBytes)
        let salt = try AccountRules.bytes("salt", body.salt, count: AccountRules.saltBytes)
        let bundle = try AccountRules.blob("bundle", body.bundle)
        let recoveryBundle = try AccountRules.blob("recoveryBundle", body.recoveryBundle)
        let recoveryAuthKey = try AccountRules.bytes("recoveryAuthKey", body.recoveryAuthKey, count: AccountRules.authKeyBytes)
        let keys = try AccountRules.publicKeys(userId: userId, identityKey: body.identityKey, x25519Key: body.x25519Key, kxCert: body.kxCert)
        let deviceLabel = try AccountRules.deviceLabel(body.deviceLabel)
        let origin = try body.origin.map { try AccountRules.origin($0) }
        let invite = body.invite?.trimmingCharacters(in: .whitespaces)
        if state.settings.registration == .invite, (invite ?? "").isEmpty {
            throw Problem.invalidField("invite", "registration needs an invite on this server")
        }
        let crypto = state.crypto
        let ip = state.address(request, context)
        try await state.rateLimiter.check(.register, for: ip)
        // Failures under one invite count against it: a taken name leaves the invite unspent, so
        // without this one invite could test any number of names.
        var inviteAttempt: FailureThrottle.Attempt?
        if let invite, !invite.isEmpty { inviteAttempt = try await state.inviteThrottle.admit([GatewayState.inviteLimit(invite)]) }
        let userAgent = state.userAgent(request)
        let now = state.clock.now()
        let result = try await state.store.write { db -> (String, String, Bool, [UserEvent], RecordedActivity) in
            // The invite first: without a usable one nobody learns whether a name is taken.
            // Any later failure rolls back, leaving the invite unused.
            var isAdmin = false
            if let invite, !invite.isEmpty {
                guard let grantsAdmin = try await AccountRepository.consumeInvite(code: invite, by: userId, at: now, in: db) else {
                    throw Problem.gone("invite-unusable", "The invite is unknown, already used or expired.")
                }
                isAdmin = grantsAdmin
            }
            if try await AccountRepository.user(named: username, in: db) != nil {
                throw Problem.conflict("The username is taken.")
            }
            if try await AccountRepository.user(id: userId, in: db) != nil {
                throw Problem.conflict("The user id is taken; generate another.")
            }
            let user = UserRecord(
                id: userId, username: username, displayName: displayName, verifier: crypto.verifier(for: authKey), salt: salt,
                identityKey: keys.identity, x25519Key: keys.x25519, kxCert: keys.cert, isAdmin: isAdmin, loginOrigin: origin
            )
            try await AccountRepository.insertUser(
                user,
                bundle: try crypto.wrap(bundle, userId: userId, kind: .main),
                recoveryBundle: try crypto.wrap(recoveryBundle, userId: userId, kind: .recovery),
                recoveryVerifier: crypto.verifier(for: recoveryAuthKey), at: now, in: db
            )
            let sessionId = GatewayState.newSessionId()
            var items = [ActivityItem(chain: userId, kind: .sessionCreated, sessionId: sessionId, ip: ip, userAgent: userAgent, details: ["device": deviceLabel])]
            if invite?.isEmpty == false {
                items.append(ActivityItem(chain: ActivityLog.serverChain, kind: .inviteUsed, ip: ip, userAgent: userAgent, details: ["userId": userId]))
            }
            let recorded = try await state.record(items, at: now, in: db)
            let session = try await state.createSession(userId: userId, deviceLabel: deviceLabel, ip: ip, sessionId: sessionId, at: now, in: db)
            return (session.token, session.sessionId, isAdmin, session.events, recorded)
        }
        if let inviteAttempt { await state.inviteThrottle.succeeded(inviteAttempt) }
        await state.publish(result.4, alongside: result.3)
        state.logger.info("registered", metadata: ["user": "\(userId)", "admin": "\(result.2)"])
        return JSONResponse(SessionResponse(
            token: result.0, sessionId: result.1,
            user: Profile(userId: userId, username: username, displayName: displayName, isAdmin: result.2),
            bundle: body.bundle, bundleVersion: 1
        ), status: .created)
    }

    @Sendable func login(request: Request, context: CircleRequestContext) async throws -> JSONResponse<SessionResponse> {
        let body = try await request.decodeJSON(as: LoginRequest.self, context: context)
        let name = AccountRules.lookupName(body.username)
        let ip = state.address(request, context)
        let deviceLabel = try AccountRules.deviceLabel(body.deviceLabel)
        let attempt = try await state.throttle.admit(username: name, address: ip)
        // A malformed key is answered like a wrong one.
        let authKey = Base64URL.decode(body.authKey).map(Array.init) ?? []
        let userAgent = state.userAgent(request)
        let user = try await state.store.read { db in try await AccountRepository.signInUser(named: name, in: db) }
        guard state.crypto.matches(authKey: authKey, stored: user?.verifier), let user else {
            await failed(attempt, name: name, user: user, ip: ip, userAgent: userAgent, method: "password")
            throw Problem.unauthorized("The username or password is wrong.")
        }
        await state.throttle.succeeded(attempt, userId: user.id)
        let now = state.clock.now()
        let crypto = state.crypto
        let result = try await state.store.write { db -> (String, String, [UInt8], Int64, [UserEvent], RecordedActivity) in
            guard let stored = try await AccountRepository.bundles(userId: user.id, in: db) else { throw StoreError.corrupt("user without key bundle") }
            // A sign-in while the account has other live sessions alerts them.
            let others = try await AccountRepository.liveSessions(userId: user.id, in: db).count
            let sessionId = GatewayState.newSessionId()
            let recorded = try await state.record([
                ActivityItem(chain: user.id, kind: .signIn, sessionId: sessionId, ip: ip, userAgent: userAgent, details: ["device": deviceLabel], alert: others > 0),
            ], at: now, in: db)
            let session = try await state.createSession(userId: user.id, deviceLabel: deviceLabel, ip: ip, sessionId: sessionId, at: now, in: db)
            return (session.token, session.sessionId, try crypto.unwrap(stored.bundle, userId: user.id, kind: .main), stored.version, session.events, recorded)
        }
        await state.publish(result.5, alongside: result.4)
        return JSONResponse(SessionResponse(
            token: result.0, sessionId: result.1,
            user: Profile(userId: user.id, username: user.username, displayName: user.displayName, isAdmin: user.isAdmin),
            bundle: Base64URL.encode(result.2), bundleVersion: result.3
        ))
    }

    @Sendable func logout(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let now = state.clock.now()
        let ip = state.address(request, context)
        let userAgent = state.userAgent(request)
        let result = try await state.store.write { db in
            let recorded = try await state.record([
                ActivityItem(chain: identity.userId, kind: .signOut, sessionId: identity.sessionId, ip: ip, userAgent: userAgent),
            ], at: now, in: db)
            return (try await state.revokeSessions(userId: identity.userId, only: identity.sessionId, at: now, in: db), recorded)
        }
        await state.sessions.announceRevoked(result.0.ids)
        await state.publish(result.1, alongside: result.0.events)
        return Response(status: .noContent)
    }

    /// After a wrong password or recovery key (the throttle counted it when it was admitted): the
    /// account's owner gets an entry (and an alert at the fifth in a row), the server's chain
    /// gets one for admins, and one more when a wait started.
    func failed(_ attempt: LoginAttempt, name: String, user: UserRecord?, ip: String, userAgent: String, method: String) async {
        let blocked = attempt.startedWait
        Counter(label: "circle_sign_in_failures_total").increment()
        var items = [ActivityItem(chain: ActivityLog.serverChain, kind: .signInFailed, ip: ip, userAgent: userAgent, details: ["username": name, "method": method])]
        if let user {
            let inARow = await state.throttle.failedInARow(userId: user.id) ?? 0
            items.append(ActivityItem(chain: user.id, kind: .signInFailed, ip: ip, userAgent: userAgent,
                                      details: ["method": method, "inARow": String(inARow)], alert: inARow > 0 && inARow % 5 == 0))
        }
        if blocked.name || blocked.address {
            items.append(ActivityItem(chain: ActivityLog.serverChain, kind: .throttled, ip: ip,
                                      details: ["username": name, "by": blocked.address ? "address" : "name"]))
        }
        await state.record(items)
    }

    /// Proves the recovery key and returns the recovery copy of the bundle; throttled like login.
    @Sendable func recovery(request: Request, context: CircleRequestContext) async throws -> JSONResponse<RecoveryResponse> {
        let body = try await request.decodeJSON(as: RecoveryRequest.self, context: context)
        let (user, stored) = try await verifyRecovery(username: body.username, recoveryAuthKey: body.recoveryAuthKey, request: request, context: context)
        let recoveryBundle = try state.crypto.unwrap(stored.recoveryBundle, userId: user.id, kind: .recovery)
        return JSONResponse(RecoveryResponse(userId: user.id, recoveryBundle: Base64URL.encode(recoveryBundle)))
    }

    /// Sets a new password (new authKey, salt and bundle) after proving the recovery key; every
    /// other session ends, and a new one starts.
    @Sendable func recoveryReset(request: Request, context: CircleRequestContext) async throws -> JSONResponse<SessionResponse> {
        let body = try await request.decodeJSON(as: RecoveryResetRequest.self, context: context)
        let authKey = try AccountRules.bytes("authKey", body.authKey, count: AccountRules.authKeyBytes)
        let salt = try AccountRules.bytes("salt", body.salt, count: AccountRules.saltBytes)
        let bundle = try AccountRules.blob("bundle", body.bundle)
        let recoveryBundle = try body.recoveryBundle.map { try AccountRules.blob("recoveryBundle", $0) }
        let newRecoveryAuthKey = try body.newRecoveryAuthKey.map { try AccountRules.bytes("newRecoveryAuthKey", $0, count: AccountRules.authKeyBytes) }
        guard (recoveryBundle == nil) == (newRecoveryAuthKey == nil) else {
            throw Problem.invalidField("recoveryBundle", "a new recovery bundle and newRecoveryAuthKey go together")
        }
        let deviceLabel = try AccountRules.deviceLabel(body.deviceLabel)
        let origin = try body.origin.map { try AccountRules.origin($0) }
        let (user, _) = try await verifyRecovery(username: body.username, recoveryAuthKey: body.recoveryAuthKey, request: request, context: context)
        let crypto = state.crypto
        let ip = state.address(request, context)
        let userAgent = state.userAgent(request)
        let now = state.clock.now()
        let result = try await state.store.write { db in
            try await AccountRepository.replaceCredentials(
                userId: user.id, verifier: crypto.verifier(for: authKey), salt: salt, origin: origin,
                bundle: try crypto.wrap(bundle, userId: user.id, kind: .main),
                recoveryBundle: try recoveryBundle.map { try crypto.wrap($0, userId: user.id, kind: .recovery) },
                recoveryVerifier: newRecoveryAuthKey.map { crypto.verifier(for: $0) }, at: now, in: db
            )
            let sessionId = GatewayState.newSessionId()
            let recorded = try await state.record([
                ActivityItem(chain: user.id, kind: .recoveryUsed, sessionId: sessionId, ip: ip, userAgent: userAgent, details: ["device": deviceLabel], alert: true),
            ], at: now, in: db)
            let revoked = try await state.revokeSessions(userId: user.id, at: now, in: db)
            let session = try await state.createSession(userId: user.id, deviceLabel: deviceLabel, ip: ip, sessionId: sessionId, at: now, in: db)
            let version = try await AccountRepository.bundles(userId: user.id, in: db)?.version ?? 0
            return (session.token, session.sessionId, revoked.ids, revoked.events + session.events, version, recorded)
        }
        await state.sessions.announceRevoked(result.2)
        await state.publish(result.5, alongside: result.3)
        state.logger.notice("account recovered", metadata: ["user": "\(user.id)"])
        return JSONResponse(SessionResponse(
            token: result.0, sessionId: result.1,
            user: Profile(userId: user.id, username: user.username, displayName: user.displayName, isAdmin: user.isAdmin),
            bundle: body.bundle, bundleVersion: result.4
        ))
    }

    private func verifyRecovery(username: String, recoveryAuthKey: String, request: Request, context: CircleRequestContext) async throws -> (UserRecord, AccountRepository.StoredBundles) {
        let name = AccountRules.lookupName(username)
        let ip = state.address(request, context)
        let attempt = try await state.throttle.admit(username: name, address: ip)
        let key = Base64URL.decode(recoveryAuthKey).map(Array.init) ?? []
        let found = try await state.store.read { db -> (UserRecord, AccountRepository.StoredBundles)? in
            guard let user = try await AccountRepository.signInUser(named: name, in: db),
                  let stored = try await AccountRepository.bundles(userId: user.id, in: db) else { return nil }
            return (user, stored)
        }
        guard state.crypto.matches(authKey: key, stored: found?.1.recoveryVerifier), let found else {
            await failed(attempt, name: name, user: found?.0, ip: ip, userAgent: state.userAgent(request), method: "recovery key")
            throw Problem.unauthorized("The username or recovery key is wrong.")
        }
        await state.throttle.succeeded(attempt, userId: found.0.id)
        return found
    }
}
