/// Every kind of frame a client can receive on the realtime socket (docs/API.md, "Events").
public enum EventType: String, Codable, Sendable, CaseIterable {
    // Stored in the user's event log (they carry `seq`).
    case sessionCreated = "session.created"
    case sessionRevoked = "session.revoked"
    case passwordChanged = "account.password-changed"
    case conversationCreated = "conversation.created"
    case conversationOp = "conversation.op"
    case conversationRead = "conversation.read"
    case envelopeNew = "envelope.new"
    case vaultFileCreated = "vault.file.created"
    case vaultFileChanged = "vault.file.changed"
    case vaultFileDeleted = "vault.file.deleted"
    /// A security alert for the member (names its activity entry; live sockets get the entry).
    case securityAlert = "security.alert"
    /// A call of one of the member's conversations rang, was answered, changed or ended (names
    /// the call; live sockets get the whole call).
    case callUpdated = "call.updated"
    /// A conversation the member was in was destroyed by its admin: drop it and its keys.
    case conversationDestroyed = "conversation.destroyed"
    /// A member who shares a conversation destroyed their account ("left the Circle").
    case memberLeft = "member.left"
    /// A stored event whose subject no longer exists (deleted or expired since): it keeps its
    /// place in the sequence and says nothing else.
    case gone = "event.gone"

    // Live only: read again from their own tables after a gap.
    case messageNew = "message.new"
    /// A new entry of the member's security activity (read again with `GET /api/v1/activity`).
    case activityNew = "activity.new"
    /// A contact's presence changed (read again with `GET /api/v1/presence/contacts`).
    case presence
    /// A member of a shared conversation started or stopped typing (ephemeral).
    case typing
    /// A sealed call signal (SDP, ICE, media state) for one device in a call (PROTOCOL 10).
    case callSignal = "call.signal"
    /// How far one of the member's destruction jobs got (read again with `GET /api/v1/destruction/{id}`).
    case destructionProgress = "destruction.progress"

    // About the socket itself.
    case ready
    case resyncRequired = "resync-required"
    /// Live delivery may have missed something (the bus reconnected): list the conversations and
    /// fetch what is new, as after `ready`.
    case catchUp = "catch-up"
}
