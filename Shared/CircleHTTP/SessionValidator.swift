import CircleBus
import CircleConfig
import CircleCore
import CircleStore
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import SQLKit
import ServiceLifecycle
import Synchronization

/// Who is calling: the user and the session their token belongs to.
public struct Identity: Sendable, Equatable, Hashable {
    public let userId: String
    public let sessionId: String

    public init(userId: String, sessionId: String) {
        self.userId = userId
        self.sessionId = sessionId
    }
}

/// Session tokens: 256 random bits for the client, only a SHA-256 hash on the server.
public enum SessionTokens {
    /// A new token, as the client receives it (unpadded base64url, 43 characters).
    public static func generate() -> String { Base64URL.encode(SecureRandom.bytes(32)) }

    /// The stored form of a token.
    public static func hash(_ token: String) -> String {
        Hex.encode(SHA256.hash(data: Data(token.utf8)))
    }

    /// Whether a string has the shape of a token (checked before any lookup).
    public static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 43 && Base64URL.decode(token)?.count == 32
    }
}

/// Checks session tokens for every service, reading the gateway's `sessions` table.
///
/// A valid token is remembered for at most one second (ARCHITECTURE 11); a revocation announced on
/// the bus (`sessions.revoked`) drops it from every replica's memory at once. The memory is
/// behind a lock, not an actor: a remembered token is answered on the caller's own thread, with
/// no hand-off to another (every request asks).
public final class SessionValidator: Service, Sendable {
    public static let revocationChannel = "sessions.revoked"
    private let store: any DatabaseStore
    private let bus: any MessageBus
    private let logger: Logger
    private let cacheLifetime: Duration
    /// How long sessions last (`sessions.idleTimeout`, `sessions.maxAge`).
    public let lifetime: SessionLifetime
    private let clock: any WallClock
    private let cache = Mutex<[String: (identity: Identity, until: ContinuousClock.Instant)]>([:])

    /// How stale a session's last use may be recorded: a session in use is written at most this
    /// often (and its idle timeout is that much less precise).
    public static let touchInterval: Int64 = 10 * 60_000

    public init(store: any DatabaseStore, bus: any MessageBus, logger: Logger, lifetime: SessionLifetime = SessionLifetime(),
                clock: any WallClock = SystemWallClock(), cacheLifetime: Duration = .seconds(1)) {
        self.store = store
        self.bus = bus
        self.logger = logger
        self.lifetime = lifetime
        self.clock = clock
        self.cacheLifetime = cacheLifetime
    }

    /// When a session created at `createdAt` and last used at `lastSeenAt` ends, unless revoked
    /// or used again first.
    public static func expiry(createdAt: Int64, lastSeenAt: Int64, lifetime: SessionLifetime) -> Int64 {
        min(createdAt + lifetime.maxAge.milliseconds, lastSeenAt + lifetime.idleTimeout.milliseconds)
    }

    /// The identity behind `token`, or nil when it is malformed, unknown, revoked or expired (idle
    /// longer than `sessions.idleTimeout`, or older than `sessions.maxAge`). A session in use has
    /// its last use recorded at most every ten minutes.
    public func identity(forToken token: String) async throws -> Identity? {
        guard SessionTokens.isWellFormed(token) else { return nil }
        let hash = SessionTokens.hash(token)
        let now = ContinuousClock.now
        if let hit = cache.withLock({ $0[hash] }), hit.until > now { return hit.identity }
        let wallNow = clock.now().millis
        let lifetime = self.lifetime
        let found = try await store.read { db -> (Identity, lastSeenAt: Int64)? in
            guard let row = try await db.raw("""
                SELECT id, user_id, created_at, last_seen_at FROM sessions WHERE token_hash = \(bind: hash) AND revoked_at IS NULL
                """).first() else { return nil }
            let createdAt = try row.decode(column: "created_at", as: Int64.self)
            let lastSeenAt = try row.decode(column: "last_seen_at", as: Int64.self)
            guard wallNow < Self.expiry(createdAt: createdAt, lastSeenAt: lastSeenAt, lifetime: lifetime) else { return nil }
            return (Identity(userId: try row.decode(column: "user_id", as: String.self), sessionId: try row.decode(column: "id", as: String.self)), lastSeenAt)
        }
        if let found, wallNow - found.lastSeenAt > Self.touchInterval {
            let id = found.0.sessionId
            do {
                try await store.write { db in
                    try await db.raw("UPDATE sessions SET last_seen_at = \(bind: wallNow) WHERE id = \(bind: id) AND last_seen_at < \(bind: wallNow)").run()
                }
            } catch {
                logger.debug("recording a session's use failed", metadata: ["error": "\(error)"])
            }
        }
        let identity = found?.0
        let until = ContinuousClock.now + cacheLifetime
        cache.withLock { cache in
            if let identity {
                if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
                cache[hash] = (identity, until)
            } else {
                cache[hash] = nil
            }
        }
        return identity
    }

    /// Forgets every cached token of these sessions (this replica only; see `announceRevoked`).
    public func forget(sessionIds: Set<String>) {
        cache.withLock { cache in cache = cache.filter { !sessionIds.contains($0.value.identity.sessionId) } }
    }

    /// Forgets every cached token (the revocation channel may have missed messages).
    func forgetAll() {
        cache.withLock { $0.removeAll() }
    }

    /// Tells every replica of every service that these sessions are revoked. Call after commit.
    public func announceRevoked(_ sessionIds: [String]) async {
        guard !sessionIds.isEmpty else { return }
        forget(sessionIds: Set(sessionIds))
        do {
            try await bus.publish(ByteBuffer(string: sessionIds.joined(separator: ",")), to: Self.revocationChannel)
        } catch {
            // The one-second cache lifetime still bounds how long a revoked token works.
            logger.warning("revocation announcement failed", metadata: ["error": "\(error)"])
        }
    }

    /// The session ids of an announcement on `revocationChannel` (as `announceRevoked` writes them).
    public static func revokedSessionIds(in announcement: ByteBuffer) -> [String] {
        String(buffer: announcement).split(separator: ",").map(String.init)
    }

    public func run() async throws {
        let subscription = try await bus.subscribe(to: Self.revocationChannel)
        for await event in subscription.events.cancelOnGracefulShutdown() {
            switch event {
            case .message(let buffer):
                forget(sessionIds: Set(Self.revokedSessionIds(in: buffer)))
            case .gap:
                forgetAll()
            }
        }
        await subscription.cancel()
    }
}

/// Reads `Authorization: Bearer <token>`; a valid token sets `context.identity`, an invalid one
/// is answered 401 at once. Routes that need a caller are registered under `authenticated()`,
/// whose handlers get an `AuthenticatedContext`.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = CircleRequestContext
    let validator: SessionValidator

    public init(validator: SessionValidator) { self.validator = validator }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // /metrics checks its own bearer token (`metrics.token`), which is no session's.
        guard let header = request.headers[.authorization], request.uri.path != "/metrics" else { return try await next(request, context) }
        guard header.hasPrefix("Bearer "), let identity = try await validator.identity(forToken: String(header.dropFirst(7))) else {
            throw Problem.unauthorized("The session token is invalid, expired or revoked.")
        }
        var context = context
        context.identity = identity
        return try await next(request, context)
    }
}
