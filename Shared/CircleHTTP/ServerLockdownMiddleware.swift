import CircleCore
import CircleStore
import Hummingbird
import Synchronization

/// Refuses the routes it guards (sign-in, registration, recovery, opening share links: what
/// needs no session, since the destruction ended every one) with 503 while the whole server is
/// being destroyed, or was since this process started (`ServerLockdown`).
public struct ServerLockdownMiddleware<Context: RequestContext>: RouterMiddleware {
    let store: any DatabaseStore
    let startedAt: Timestamp
    /// Set once a destruction was seen: the answer holds until the process stops, so the
    /// database is not asked again.
    let seen = SeenFlag()

    final class SeenFlag: Sendable {
        let value = Mutex(false)
    }

    static var refused: Problem {
        .unavailable("This server is being destroyed: it takes no sign-ins, registrations or link opens until it starts again with new keys.")
    }

    /// `startedAt`: when this process began serving (a destruction finished before it does not count).
    public init(store: any DatabaseStore, startedAt: Timestamp) {
        self.store = store
        self.startedAt = startedAt
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if seen.value.withLock({ $0 }) { throw Self.refused }
        let startedAt = self.startedAt
        if try await store.read({ db in try await ServerLockdown.isDestroying(since: startedAt, in: db) }) {
            seen.value.withLock { $0 = true }
            throw Self.refused
        }
        return try await next(request, context)
    }
}
