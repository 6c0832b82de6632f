import CircleCore
import Foundation

/// A member's presence as the server shows it to this user (PROTOCOL-independent: the server
/// sees and could forge presence, so it is a hint).
public struct Presence: Codable, Sendable, Equatable {
    public struct Status: Codable, Sendable, Equatable {
        public let emoji: String
        public let text: String
        public let expiresAt: Int64?
    }

    public let userId: String
    public let state: String
    public let status: Status?
    public let lastSeenAt: Int64?
    /// Only in one's own view: the state chosen, and the privacy choices.
    public let chosen: String?
    public let hideLastSeen: Bool?
    public let typing: Bool?
}

extension ChatClient {
    struct PresenceList: Decodable { let presence: [Presence] }
    struct ContactsPresence: Decodable {
        let own: Presence
        let contacts: [Presence]
    }

    /// The presence of members by username (unknown names are refused by the directory).
    public func presence(of usernames: [String]) async throws -> [(username: String, presence: Presence)] {
        try requireSession()
        var ids: [String] = []
        for name in usernames { ids.append(name == state.username ? state.userId : try await entry(username: name).userId) }
        let list: PresenceList = try await api.call(.GET, "/api/v1/presence?users=\(ids.joined(separator: ","))")
        return zip(usernames, list.presence).map { ($0, $1) }
    }

    /// This user's own presence and every contact's, with their usernames.
    public func contactsPresence() async throws -> (own: Presence, contacts: [(username: String, presence: Presence)]) {
        try requireSession()
        let answer: ContactsPresence = try await api.call(.GET, "/api/v1/presence/contacts")
        var contacts: [(String, Presence)] = []
        for presence in answer.contacts { contacts.append(((try? await entry(userId: presence.userId).username) ?? presence.userId, presence)) }
        return (answer.own, contacts)
    }

    /// A change to this user's presence.
    public struct PresenceChange: Encodable, Sendable {
        public struct Status: Encodable, Sendable {
            public var emoji: String?
            public var text: String?
            public var expiresAt: Int64?
            public init(emoji: String? = nil, text: String? = nil, expiresAt: Int64? = nil) {
                self.emoji = emoji
                self.text = text
                self.expiresAt = expiresAt
            }
        }

        public var state: String?
        public var status: Status?
        public var clearStatus: Bool?
        public var hideLastSeen: Bool?
        public var typing: Bool?

        public init(state: String? = nil, status: Status? = nil, clearStatus: Bool? = nil, hideLastSeen: Bool? = nil, typing: Bool? = nil) {
            self.state = state
            self.status = status
            self.clearStatus = clearStatus
            self.hideLastSeen = hideLastSeen
            self.typing = typing
        }
    }

    /// Changes this user's presence; returns their own view.
    @discardableResult
    public func setPresence(_ change: PresenceChange) async throws -> Presence {
        try requireSession()
        return try await api.call(.PUT, "/api/v1/presence", body: change)
    }
}
