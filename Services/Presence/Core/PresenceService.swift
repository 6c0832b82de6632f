import CircleCore
import CircleEvents
import CircleStore
import Foundation
import Logging
import MessagingStore
import PresenceStore
import SQLKit

/// A member's presence as one viewer sees it.
package struct PresenceView: Codable, Sendable, Equatable {
    package struct Status: Codable, Sendable, Equatable {
        package let emoji: String
        package let text: String
        /// When it clears itself (milliseconds since 1970); nil for never.
        package let expiresAt: Int64?
    }

    package let userId: String
    /// online, away, busy or offline (an invisible member is offline to everyone else).
    package let state: String
    package let status: Status?
    /// When the member was last online, unless they hide it (or it is unknown).
    package let lastSeenAt: Int64?
    /// The member's own choices: only in their own view.
    package let chosen: String?
    package let hideLastSeen: Bool?
    package let typing: Bool?

    /// What anyone who may not see the member (not a contact, or no such member) gets.
    package static func unknown(_ userId: String) -> PresenceView {
        PresenceView(userId: userId, state: "offline", status: nil, lastSeenAt: nil, chosen: nil, hideLastSeen: nil, typing: nil)
    }
}

/// A change a member makes to their own presence.
package struct PresenceChange: Sendable {
    package var state: PresenceState?
    /// A new custom status; `clearStatus` removes it.
    package var status: (emoji: String, text: String, expiresAt: Int64)?
    package var clearStatus = false
    package var hideLastSeen: Bool?
    package var typing: Bool?

    package init() {}
}

/// Presence (ARCHITECTURE 7): who is online, away, busy or (to others) offline, custom statuses
/// and last-seen times, visible only to members who share a conversation. Changes reach every
/// contact live (`presence` frames, never stored); a reconnecting client asks again.
package struct PresenceService: Sendable {
    let store: any DatabaseStore
    let events: EventPublisher
    let clock: any WallClock
    let logger: Logger

    package init(store: any DatabaseStore, events: EventPublisher, clock: any WallClock, logger: Logger) {
        self.store = store
        self.events = events
        self.clock = clock
        self.logger = logger
    }

    /// How `record` looks to someone else (a contact), at `now`.
    static func visible(_ record: PresenceRecord, at now: Timestamp) -> PresenceView {
        let shown = record.online && record.state != .invisible
        let status = statusView(record, at: now)
        return PresenceView(userId: record.userId, state: shown ? record.state.rawValue : "offline", status: record.state == .invisible ? nil : status,
                            lastSeenAt: shown || record.hideLastSeen || record.lastSeenAt == 0 ? nil : record.lastSeenAt,
                            chosen: nil, hideLastSeen: nil, typing: nil)
    }

    /// How `record` looks to its own member.
    static func own(_ record: PresenceRecord, at now: Timestamp) -> PresenceView {
        PresenceView(userId: record.userId, state: record.online ? (record.state == .invisible ? "offline" : record.state.rawValue) : "offline",
                     status: statusView(record, at: now), lastSeenAt: record.lastSeenAt == 0 ? nil : record.lastSeenAt, chosen: record.state.rawValue,
                     hideLastSeen: record.hideLastSeen, typing: record.typing)
    }

    static func statusView(_ record: PresenceRecord, at now: Timestamp) -> PresenceView.Status? {
        guard !record.statusText.isEmpty || !record.statusEmoji.isEmpty, record.statusExpiresAt == 0 || record.statusExpiresAt > now.millis else { return nil }
        return .init(emoji: record.statusEmoji, text: record.statusText, expiresAt: record.statusExpiresAt == 0 ? nil : record.statusExpiresAt)
    }

    /// Whether two views differ in what a contact notices (last seen only matters going offline).
    static func changed(_ a: PresenceView, _ b: PresenceView) -> Bool {
        a.state != b.state || a.status != b.status || (b.state == "offline" && a.lastSeenAt != b.lastSeenAt)
    }

    /// The presence of `userIds` as `viewer` may see it: contacts as they are, the viewer as they
    /// see themselves, anyone else (or an unknown id) offline and blank.
    package func views(of userIds: [String], for viewer: String) async throws -> [PresenceView] {
        let now = clock.now()
        return try await store.read { db in
            let others = userIds.filter { $0 != viewer }
            let contacts = try await ConversationMembers.contacts(of: viewer, among: others, in: db)
            let wanted = Array(contacts) + (userIds.contains(viewer) ? [viewer] : [])
            let records = try await PresenceRepository.records(wanted, in: db)
            return userIds.map { id in
                if id == viewer { return Self.own(records[id] ?? PresenceRecord(userId: id), at: now) }
                guard contacts.contains(id) else { return .unknown(id) }
                return Self.visible(records[id] ?? PresenceRecord(userId: id), at: now)
            }
        }
    }

    /// The viewer's own presence and every contact's.
    package func contacts(of viewer: String) async throws -> (own: PresenceView, contacts: [PresenceView]) {
        let now = clock.now()
        return try await store.read { db in
            let contacts = try await ConversationMembers.contacts(of: viewer, in: db).sorted()
            let records = try await PresenceRepository.records(contacts + [viewer], in: db)
            return (Self.own(records[viewer] ?? PresenceRecord(userId: viewer), at: now),
                    contacts.map { Self.visible(records[$0] ?? PresenceRecord(userId: $0), at: now) })
        }
    }

    /// Applies a member's change to their presence; tells their contacts when what they see
    /// changed, and the member's own sessions always.
    @discardableResult
    package func update(_ userId: String, _ change: PresenceChange) async throws -> PresenceView {
        let now = clock.now()
        let engine = store.engine
        let (before, after) = try await store.write { db in
            var record = try await PresenceRepository.lock(userId, engine: engine, at: now, in: db)
            let before = record
            if let state = change.state {
                // Turning invisible while online is, to everyone else, going offline now.
                if state == .invisible, record.state != .invisible, record.online { record.lastSeenAt = now.millis }
                record.state = state
            }
            if change.clearStatus {
                (record.statusEmoji, record.statusText, record.statusExpiresAt) = ("", "", 0)
            } else if let status = change.status {
                (record.statusEmoji, record.statusText, record.statusExpiresAt) = (status.emoji, status.text, status.expiresAt)
            }
            if let hide = change.hideLastSeen { record.hideLastSeen = hide }
            if let typing = change.typing { record.typing = typing }
            try await PresenceRepository.save(record, at: now, in: db)
            return (before, record)
        }
        await announce(before: before, after: after, at: now, toSelf: true)
        if before.typing != after.typing { await events.announce([.member(userId)]) }
        return Self.own(after, at: now)
    }

    /// Sets whether the member is connected from their open sockets; tells their contacts when
    /// that changes what they see.
    package func refresh(_ userId: String) async throws {
        let now = clock.now()
        let engine = store.engine
        let (before, after) = try await store.write { db in
            var record = try await PresenceRepository.lock(userId, engine: engine, at: now, in: db)
            let before = record
            let online = try await PresenceRepository.hasOpenSocket(userId, in: db)
            guard online != record.online else { return (before, record) }
            // Going offline sets last seen, unless the member was invisible (never seen online).
            if !online, record.state != .invisible { record.lastSeenAt = now.millis }
            record.online = online
            try await PresenceRepository.save(record, at: now, in: db)
            return (before, record)
        }
        await announce(before: before, after: after, at: now, toSelf: before.online != after.online)
    }

    /// Clears a custom status that expired.
    package func clearExpiredStatus(_ userId: String) async throws {
        let now = clock.now()
        let engine = store.engine
        let (before, after) = try await store.write { db in
            var record = try await PresenceRepository.lock(userId, engine: engine, at: now, in: db)
            let before = record
            guard record.statusExpiresAt > 0, record.statusExpiresAt <= now.millis else { return (before, record) }
            (record.statusEmoji, record.statusText, record.statusExpiresAt) = ("", "", 0)
            try await PresenceRepository.save(record, at: now, in: db)
            return (before, record)
        }
        // What contacts saw changed when the status expired, not now: tell them anyway, once.
        var seen = before
        seen.statusExpiresAt = 0
        await announce(before: seen, after: after, at: now, toSelf: true)
    }

    /// Publishes the member's presence to their contacts when what they see changed (and to the
    /// member's own sessions when asked).
    func announce(before: PresenceRecord, after: PresenceRecord, at now: Timestamp, toSelf: Bool) async {
        let old = Self.visible(before, at: now)
        let new = Self.visible(after, at: now)
        var deliveries: [(frame: EventFrame, userIds: [String])] = []
        do {
            if Self.changed(old, new) {
                let contacts = try await store.read { db in try await ConversationMembers.contacts(of: after.userId, in: db) }
                if !contacts.isEmpty { deliveries.append((try EventFrame(type: .presence, data: new), contacts.sorted())) }
            }
            if toSelf { deliveries.append((try EventFrame(type: .presence, data: Self.own(after, at: now)), [after.userId])) }
        } catch {
            logger.warning("presence change not announced", metadata: ["error": "\(error)"])
            return
        }
        await events.publish(live: deliveries)
    }
}
