import CircleBus
import CircleCore
import CircleEvents
import CircleStore
import Logging
import MessagingStore
import PresenceStore

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
            let recipients = audience.receivers.filter { $0 != userId }
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
    /// The members who see typing, in order: worked out once per audience, which is kept for
    /// many frames (`AudienceCache`), not once per frame.
    let receivers: [String]

    package init(members: Set<String>, typingOff: Set<String>) {
        self.members = members
        self.typingOff = typingOff
        self.receivers = members.subtracting(typingOff).sorted()
    }
}
