import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Foundation
import Hummingbird
import Logging
import SQLKit

/// What the gateway's controllers share.
struct GatewayState: Sendable {
    let store: any DatabaseStore
    let events: EventPublisher
    let sessions: SessionValidator
    let crypto: AccountCrypto
    let throttle: LoginThrottle
    let settings: GatewaySettings
    let clock: any WallClock
    let logger: Logger
    let serverID: ServerIDCache
    let activity: SessionActivity

    /// The client's address for throttling and the session list.
    func address(_ request: Request, _ context: CircleRequestContext) -> String {
        context.clientAddress(request, trustForwardedFor: settings.trustForwardedFor)
    }

    /// Creates a session inside the caller's transaction and logs `session.created` for the user.
    func createSession(userId: String, deviceLabel: String, ip: String, at now: Timestamp, in db: any SQLDatabase) async throws -> (token: String, sessionId: String, events: [UserEvent]) {
        let token = SessionTokens.generate()
        let sessionId = Base64URL.encode(SecureRandom.bytes(16))
        try await AccountRepository.insertSession(id: sessionId, tokenHash: SessionTokens.hash(token), userId: userId, deviceLabel: deviceLabel, ip: ip, at: now, in: db)
        let events = try await UserEventLog.append([
            NewUserEvent(userId: userId, type: "session.created", data: EventData.json(SessionCreated(sessionId: sessionId, deviceLabel: deviceLabel, createdAt: now.millis))),
        ], at: now, in: db)
        return (token, sessionId, events)
    }

    /// Revokes sessions inside the caller's transaction, logging `session.revoked` for each.
    func revokeSessions(userId: String, only: String? = nil, except: String? = nil, at now: Timestamp, in db: any SQLDatabase) async throws -> (ids: [String], events: [UserEvent]) {
        let ids = try await AccountRepository.revokeSessions(userId: userId, only: only, except: except, at: now, in: db)
        let events = try await UserEventLog.append(ids.map {
            NewUserEvent(userId: userId, type: "session.revoked", data: EventData.json(SessionRevoked(sessionId: $0)))
        }, at: now, in: db)
        return (ids, events)
    }

    /// After commit: tell every replica, then every socket.
    func announce(revoked: [String], events: [UserEvent]) async {
        await sessions.announceRevoked(revoked)
        await self.events.publish(events)
    }
}

struct SessionCreated: Codable, Sendable { let sessionId: String; let deviceLabel: String; let createdAt: Int64 }
struct SessionRevoked: Codable, Sendable { let sessionId: String }

