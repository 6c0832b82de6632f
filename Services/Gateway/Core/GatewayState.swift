import CircleActivity
import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Crypto
import Foundation
import GatewayStore
import Hummingbird
import Logging
import SQLKit

/// What the gateway's controllers share.
package struct GatewayState: Sendable {
    package let store: any DatabaseStore
    package let events: EventPublisher
    package let sessions: SessionValidator
    package let crypto: AccountCrypto
    package let throttle: LoginThrottle
    package let settings: GatewaySettings
    package let clock: any WallClock
    package let logger: Logger
    package let serverID: ServerIDCache
    package let activity: SessionActivity
    /// Records security activity (ARCHITECTURE 7).
    package let security: ActivityRecorder
    /// The named rate limits (prelogin, register, directory lookups).
    package let rateLimiter: RateLimiter

    /// Failed registrations under one invite (a taken name leaves it unspent).
    package var inviteThrottle: FailureThrottle { FailureThrottle(counters: throttle.counters, logger: logger) }

    /// Three failures an hour under one invite are free, then each makes the next attempt wait
    /// (1 s, doubling, up to 15 minutes). The key holds the invite's hash, never the invite.
    package static func inviteLimit(_ code: String) -> AttemptLimit {
        let hash = SHA256.hash(data: Array(code.utf8)).map { String(format: "%02x", $0) }.joined()
        return AttemptLimit(key: "register:invite:" + hash, free: 3, window: .seconds(3600), maximumWait: .seconds(900))
    }

    package init(store: any DatabaseStore, events: EventPublisher, sessions: SessionValidator, crypto: AccountCrypto, throttle: LoginThrottle, settings: GatewaySettings, clock: any WallClock, logger: Logger, serverID: ServerIDCache, activity: SessionActivity, security: ActivityRecorder, rateLimiter: RateLimiter) {
        self.security = security
        self.rateLimiter = rateLimiter
        self.store = store
        self.events = events
        self.sessions = sessions
        self.crypto = crypto
        self.throttle = throttle
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.serverID = serverID
        self.activity = activity
    }

    /// The client's address for throttling and the session list.
    package func address(_ request: Request, _ context: some CircleContext) -> String {
        context.clientAddress(request, trustForwardedFor: settings.trustForwardedFor)
    }

    /// The client's user agent, as much of it as the activity log keeps.
    package func userAgent(_ request: Request) -> String {
        String((request.headers[.userAgent] ?? "").prefix(512))
    }

    /// Records security activity inside the caller's transaction (before any of the request's
    /// events, so every writer takes the chains' and the event counters' locks in that order).
    package func record(_ items: [ActivityItem], at now: Timestamp, in db: any SQLDatabase) async throws -> RecordedActivity {
        try await security.record(items, at: now, engine: store.engine, in: db)
    }

    /// Records security activity in a transaction of its own and tells the member's sessions.
    package func record(_ items: [ActivityItem]) async {
        let now = clock.now()
        do {
            let recorded = try await store.write { db in try await record(items, at: now, in: db) }
            await security.publish(recorded, with: events)
        } catch {
            logger.error("recording security activity failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// After the commit: the alerts and live activity of what was recorded, with the other
    /// events of the same transaction (published together, each member's in order).
    package func publish(_ recorded: RecordedActivity, alongside others: [UserEvent] = []) async {
        await security.publish(recorded, with: events, alongside: others)
    }

    /// Creates a session inside the caller's transaction and logs `session.created` for the user.
    package func createSession(userId: String, deviceLabel: String, ip: String, sessionId: String = GatewayState.newSessionId(), at now: Timestamp,
                               in db: any SQLDatabase) async throws -> (token: String, sessionId: String, events: [UserEvent]) {
        let token = SessionTokens.generate()
        try await AccountRepository.insertSession(id: sessionId, tokenHash: SessionTokens.hash(token), userId: userId, deviceLabel: deviceLabel, ip: ip, at: now, in: db)
        let events = try await UserEventLog.append([
            NewUserEvent(userId: userId, type: .sessionCreated, data: EventData.json(SessionCreated(sessionId: sessionId, deviceLabel: deviceLabel, createdAt: now.millis))),
        ], at: now, in: db)
        return (token, sessionId, events)
    }

    /// A new session's id (128 random bits), chosen before the session is stored when its
    /// activity entry must name it.
    package static func newSessionId() -> String { Base64URL.encode(SecureRandom.bytes(16)) }

    /// Revokes sessions inside the caller's transaction, logging `session.revoked` for each.
    package func revokeSessions(userId: String, only: String? = nil, except: String? = nil, at now: Timestamp, in db: any SQLDatabase) async throws -> (ids: [String], events: [UserEvent]) {
        let ids = try await AccountRepository.revokeSessions(userId: userId, only: only, except: except, at: now, in: db)
        let events = try await UserEventLog.append(ids.map {
            NewUserEvent(userId: userId, type: .sessionRevoked, data: EventData.json(SessionRevoked(sessionId: $0)))
        }, at: now, in: db)
        return (ids, events)
    }

    /// After commit: tell every replica, then every socket.
    package func announce(revoked: [String], events: [UserEvent]) async {
        await sessions.announceRevoked(revoked)
        await self.events.publish(events)
    }
}

package struct SessionCreated: Codable, Sendable {
    package let sessionId: String
    package let deviceLabel: String
    package let createdAt: Int64

    package init(sessionId: String, deviceLabel: String, createdAt: Int64) {
        self.sessionId = sessionId
        self.deviceLabel = deviceLabel
        self.createdAt = createdAt
    }
}
package struct SessionRevoked: Codable, Sendable {
    package let sessionId: String

    package init(sessionId: String) {
        self.sessionId = sessionId
    }
}

