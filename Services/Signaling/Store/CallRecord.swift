import CircleCore

/// A call: one conversation's members talking (`call`, a mesh of up to a few devices) or one of
/// them broadcasting to the others (`broadcast`).
package enum CallKind: String, Sendable, Codable, CaseIterable {
    case call, broadcast
}

/// What a call or a participant sends: voice only, or voice and video.
package enum CallMedia: String, Sendable, Codable, CaseIterable {
    case audio, video
}

/// A call rings until someone answers, is active while anyone talks, then has ended for a reason.
package enum CallState: String, Sendable, Codable {
    case ringing, active, ended
}

/// Why a call ended (empty while it has not).
package enum CallEndReason: String, Sendable, Codable {
    case none = ""
    /// Nobody answered within the ring time.
    case missed
    /// Everyone rung said no.
    case declined
    /// Everyone rung was in another call.
    case busy
    /// The caller hung up before anyone answered.
    case cancelled
    /// A device could not set the call up (or refused tampered signaling).
    case failed
    /// Talked, then hung up.
    case completed
}

/// What one member's part in a call is.
package enum CallRole: String, Sendable, Codable {
    /// Started the call (the broadcaster of a broadcast).
    case caller
    /// Rung, or joined later.
    case callee
    /// Watches a broadcast.
    case viewer
}

/// Where one member stands in a call.
package enum ParticipantState: String, Sendable, Codable {
    /// Being rung.
    case ringing
    /// In the call on one device.
    case joined
    /// Was in the call and left (or dropped and did not come back).
    case left
    case declined
    /// Rung and did not answer.
    case missed
    /// Was in another call when rung.
    case busy
}

/// A row of `video_calls`.
package struct CallRecord: Sendable, Equatable {
    package var id: String
    package var conversationId: String
    package var kind: CallKind
    package var media: CallMedia
    package var creatorId: String
    package var state: CallState
    package var reason: CallEndReason
    package var createdAt: Int64
    /// When ringing stops (those still rung then missed it).
    package var ringUntil: Int64
    /// When the first callee answered (0: never).
    package var answeredAt: Int64
    package var endedAt: Int64

    package init(id: String, conversationId: String, kind: CallKind, media: CallMedia, creatorId: String, state: CallState, reason: CallEndReason,
                 createdAt: Int64, ringUntil: Int64, answeredAt: Int64 = 0, endedAt: Int64 = 0) {
        self.id = id
        self.conversationId = conversationId
        self.kind = kind
        self.media = media
        self.creatorId = creatorId
        self.state = state
        self.reason = reason
        self.createdAt = createdAt
        self.ringUntil = ringUntil
        self.answeredAt = answeredAt
        self.endedAt = endedAt
    }
}

/// A row of `call_participants`: one member's part in one call.
package struct CallParticipant: Sendable, Equatable {
    package var callId: String
    package var userId: String
    package var role: CallRole
    package var state: ParticipantState
    package var media: CallMedia
    /// The device in the call while joined (the one signals go to); empty otherwise.
    package var deviceId: String
    /// The session that joined: only it may signal, beat or leave for the member.
    package var sessionId: String
    package var invitedAt: Int64
    /// When the member last joined (0: never).
    package var joinedAt: Int64
    package var leftAt: Int64
    /// When the joined device last showed it is still there.
    package var seenAt: Int64
    /// Time spent joined before the current stretch, in milliseconds.
    package var connectedMillis: Int64

    package init(callId: String, userId: String, role: CallRole, state: ParticipantState, media: CallMedia, deviceId: String = "", sessionId: String = "",
                 invitedAt: Int64, joinedAt: Int64 = 0, leftAt: Int64 = 0, seenAt: Int64 = 0, connectedMillis: Int64 = 0) {
        self.callId = callId
        self.userId = userId
        self.role = role
        self.state = state
        self.media = media
        self.deviceId = deviceId
        self.sessionId = sessionId
        self.invitedAt = invitedAt
        self.joinedAt = joinedAt
        self.leftAt = leftAt
        self.seenAt = seenAt
        self.connectedMillis = connectedMillis
    }

    /// Ends the member's current stretch in the call at `now` (adds it to the time connected).
    package mutating func leave(_ state: ParticipantState, at now: Int64) {
        if self.state == .joined, joinedAt > 0 { connectedMillis += max(0, now - joinedAt) }
        self.state = state
        leftAt = now
        deviceId = ""
        sessionId = ""
    }
}
