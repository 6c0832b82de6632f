import CircleBus
import CircleCore
import CircleEvents
import CircleStore
import Logging
import MessagingStore
import PresenceStore
import ServiceLifecycle
import Synchronization

/// Typing indicators (ARCHITECTURE 7): a member's `typing` frame from the realtime socket goes,
/// live and never stored, to the conversation's other members, at most one per member,
/// conversation and state every two seconds (more are dropped, not queued). A member who turned
/// typing indicators off neither sends nor receives them; a frame from a non-member is dropped
/// without an answer. Clients let an indicator lapse after `expiresIn` without a renewal.
///
/// The gateway relays typing itself (reading membership and the preference through the
/// messaging and presence stores' views): one hop less than going through the presence service,
/// for a frame that is never stored.
package struct TypingRelay: Sendable {
    let store: any DatabaseStore
    let events: EventPublisher
    let counters: any ExpiringCounters
    let logger: Logger
    let audiences: AudienceCache

    /// How long an indicator lasts without a renewal.
    package static let expiresIn: Duration = .seconds(6)
    /// At most one frame per member, conversation and state in this window.
    package static let window: Duration = .seconds(2)

    package init(store: any DatabaseStore, events: EventPublisher, counters: any ExpiringCounters, audiences: AudienceCache, logger: Logger) {
        self.store = store
        self.events = events
        self.counters = counters
        self.audiences = audiences
        self.logger = logger
    }

    /// What a client sends.
    package struct Request: Decodable, Sendable {
        package let conversationId: String
        package let state: String
    }

    /// What the other members receive.
    package struct Indicator: Codable, Sendable, Equatable {
        package let conversationId: String
        package let userId: String
        package let state: String
        /// Milliseconds after which the indicator lapses without a renewal.
        package let expiresIn: Int64
    }

    /// Relays one typing frame from `userId` (the socket's authenticated member); returns whether
    /// it was forwarded.
    @discardableResult
    package func relay(_ request: Request, from userId: String) async -> Bool {
        guard request.state == "start" || request.state == "stop", request.conversationId.utf8.count == 43 else { return false }
        do {
            let count = try await counters.increment("typing:\(userId):\(request.conversationId):\(request.state)", window: Self.window)
            guard count == 1 else { return false }
            let audience = try await audiences.audience(of: request.conversationId) { conversationId in
                try await store.read { db in
                    let members = try await ConversationMembers.members(of: conversationId, in: db)
                    return Audience(members: Set(members), typingOff: try await PresencePreferences.typingOff(among: members, in: db))
                }
            }
            guard audience.members.contains(userId), !audience.typingOff.contains(userId) else { return false }
            let recipients = audience.members.subtracting(audience.typingOff).subtracting([userId]).sorted()
            guard !recipients.isEmpty else { return false }
            let indicator = Indicator(conversationId: request.conversationId, userId: userId, state: request.state, expiresIn: Self.expiresIn.milliseconds)
            return await events.publish(live: [(try EventFrame(type: .typing, data: indicator), recipients)])
        } catch {
            logger.debug("typing frame dropped", metadata: ["error": "\(error)"])
            return false
        }
    }
}

/// Who may send and receive typing in a conversation.
package struct Audience: Sendable {
    package let members: Set<String>
    package let typingOff: Set<String>

    package init(members: Set<String>, typingOff: Set<String>) {
        self.members = members
        self.typingOff = typingOff
    }
}

/// Conversations' audiences, kept while the bus says nothing changed them: every change of
/// membership or of a typing preference is announced (`AudienceChange`) and drops what it
/// touches at once, and a bus reconnect (a gap, when announcements may have been lost) drops
/// everything. Entries still lapse after `lifetime`, which bounds an announcement lost in a way
/// the bus does not report (the publisher's own connection failing); before the subscription is
/// confirmed they lapse after `unconfirmedLifetime`.
///
/// A `Service`: `run()` subscribes, and unsubscribes on shutdown.
package final class AudienceCache: Service, Sendable {
    private struct State {
        var entries: [String: (audience: Audience, until: ContinuousClock.Instant)] = [:]
        /// Bumped by every change: a load that began before one is used once, not kept.
        var generation: UInt64 = 0
        var subscribed = false
    }

    private let bus: (any MessageBus)?
    private let logger: Logger
    private let state = Mutex(State())
    static let lifetime: Duration = .seconds(60)
    static let unconfirmedLifetime: Duration = .seconds(1)
    static let capacity = 10_000

    /// Without a bus, entries always lapse after `unconfirmedLifetime`.
    package init(bus: (any MessageBus)?, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    package func run() async throws {
        guard let bus else { return }
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

    /// Whether the subscription to announcements is confirmed (entries then last `lifetime`).
    package var subscribed: Bool { state.withLock { $0.subscribed } }

    package func audience(of conversationId: String, load: @Sendable (String) async throws -> Audience) async throws -> Audience {
        let now = ContinuousClock.now
        let (cached, generation) = state.withLock { ($0.entries[conversationId], $0.generation) }
        if let cached, cached.until > now { return cached.audience }
        let audience = try await load(conversationId)
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries = state.entries.filter { $0.value.until > now } }
            if state.entries.count >= Self.capacity { state.entries.removeAll() }
            state.entries[conversationId] = (audience, now + (state.subscribed ? Self.lifetime : Self.unconfirmedLifetime))
        }
        return audience
    }

    /// Drops the audiences the changes touch.
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
