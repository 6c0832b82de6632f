import CircleBus
import CircleEvents
import Logging
import ServiceLifecycle
import Synchronization

/// Conversations' audiences, kept while the bus says nothing changed them: every change of
/// membership or of a typing preference is announced (`AudienceChange`) and drops what it
/// touches at once, and a bus reconnect (a gap, when announcements may have been lost) drops
/// everything. Entries still lapse after `lifetime`, which bounds an announcement lost where the
/// bus cannot tell: the publisher's own connection failing, or its process dying between the
/// commit and the announcement. Loads that began before the subscription lapse after
/// `unsubscribedLifetime`.
///
/// A `Service`: `run()` subscribes, and unsubscribes on shutdown.
package final class AudienceCache: Service, Sendable {
    private struct State {
        var entries: [String: (audience: Audience, until: ContinuousClock.Instant)] = [:]
        /// Bumped by every change: a load that began before one is used once, not kept.
        var generation: UInt64 = 0
        var subscribed = false
    }

    private let bus: any MessageBus
    private let logger: Logger
    private let state = Mutex(State())
    static let lifetime: Duration = .seconds(60)
    static let unsubscribedLifetime: Duration = .seconds(1)
    static let capacity = 10_000

    package init(bus: any MessageBus, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    package func run() async throws {
        let subscription = try await bus.subscribe(to: AudienceChange.channel) { [self] event in
            switch event {
            case .message(let payload): forget(AudienceChange.decode(payload))
            case .gap: forgetAll()
            }
        }
        state.withLock { $0.subscribed = true }
        try? await gracefulShutdown()
        state.withLock { $0.subscribed = false }
        await subscription.cancel()
    }

    /// Whether announcements are heard (entries loaded from then on last `lifetime`).
    package var subscribed: Bool { state.withLock { $0.subscribed } }

    package func audience(of conversationId: String, load: @Sendable (String) async throws -> Audience) async throws -> Audience {
        let now = ContinuousClock.now
        // Whether a change during the load would be heard is decided before it starts.
        let (cached, generation, subscribed) = state.withLock { ($0.entries[conversationId], $0.generation, $0.subscribed) }
        if let cached, cached.until > now { return cached.audience }
        let audience = try await load(conversationId)
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries = state.entries.filter { $0.value.until > now } }
            if state.entries.count >= Self.capacity { state.entries.removeAll() }
            state.entries[conversationId] = (audience, now + (subscribed ? Self.lifetime : Self.unsubscribedLifetime))
        }
        return audience
    }

    /// Drops the audiences the changes touch (on the bus's context: a member's change walks the
    /// entries, at most `capacity`, and such changes are rare).
    package func forget(_ changes: [AudienceChange]) {
        guard !changes.isEmpty else { return }
        var conversations = Set<String>()
        var members = Set<String>()
        for change in changes {
            switch change {
            case .conversation(let id): conversations.insert(id)
            case .member(let id): members.insert(id)
            }
        }
        state.withLock { state in
            state.generation &+= 1
            for id in conversations { state.entries[id] = nil }
            if !members.isEmpty { state.entries = state.entries.filter { $0.value.audience.members.isDisjoint(with: members) } }
        }
    }

    /// Drops every audience.
    package func forgetAll() {
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll()
        }
    }
}
