import CircleCore
import SignalingStore

/// A call as its conversation's members see it (`GET /api/v1/calls/{id}`, `call.updated`): who,
/// when, how long, with what media, and how it ended; never SDP or addresses.
package struct CallView: Codable, Sendable, Equatable {
    package struct Participant: Codable, Sendable, Equatable {
        package let userId: String
        package let role: String
        package let state: String
        package let media: String
        /// The device in the call while joined: where signals for this member go.
        package let deviceId: String?
        package let joinedAt: Int64?
        package let leftAt: Int64?
        /// Time spent in the call so far, in milliseconds.
        package let connectedMs: Int64
    }

    package let id: String
    package let conversationId: String
    package let kind: String
    package let media: String
    package let state: String
    /// Why it ended (missed, declined, busy, cancelled, failed, completed); nil while live.
    package let reason: String?
    package let createdBy: String
    package let createdAt: Int64
    /// While ringing: when it stops.
    package let ringUntil: Int64?
    package let answeredAt: Int64?
    package let endedAt: Int64?
    /// From the first answer to the end (or now), in milliseconds; 0 when nobody answered.
    package let durationMs: Int64
    package let participants: [Participant]

    package init(_ call: CallRecord, participants: [CallParticipant], now: Int64) {
        id = call.id
        conversationId = call.conversationId
        kind = call.kind.rawValue
        media = call.media.rawValue
        state = call.state.rawValue
        reason = call.reason == .none ? nil : call.reason.rawValue
        createdBy = call.creatorId
        createdAt = call.createdAt
        ringUntil = call.state == .ended || call.ringUntil == Int64.max ? nil : call.ringUntil
        answeredAt = call.answeredAt == 0 ? nil : call.answeredAt
        endedAt = call.endedAt == 0 ? nil : call.endedAt
        durationMs = call.answeredAt == 0 ? 0 : max(0, (call.endedAt == 0 ? now : call.endedAt) - call.answeredAt)
        self.participants = participants.map { p in
            let current = p.state == .joined && p.joinedAt > 0 ? max(0, now - p.joinedAt) : 0
            return Participant(userId: p.userId, role: p.role.rawValue, state: p.state.rawValue, media: p.media.rawValue,
                               deviceId: p.state == .joined ? p.deviceId : nil, joinedAt: p.joinedAt == 0 ? nil : p.joinedAt,
                               leftAt: p.leftAt == 0 ? nil : p.leftAt, connectedMs: p.connectedMillis + current)
        }
    }
}

/// What a stored `call.updated` event holds: a reference; the client reads the call again.
package struct CallReference: Codable, Sendable {
    package let callId: String
    package let conversationId: String
}

/// A relayed signal, as the recipient's device receives it (`call.signal`, live only).
package struct CallSignalFrame: Codable, Sendable {
    package let callId: String
    package let conversationId: String
    package let from: String
    package let fromDevice: String
    package let toDevice: String
    /// The sealed, signed signal (PROTOCOL 10), base64url.
    package let payload: String
}
