import CircleCore
import CircleProtocol
import MessagingStore

/// A message (a new one, an edit or a delete) waiting to be stored, as its sender posted it.
package struct PendingMessage: Sendable {
    package let conversation: ConversationID
    package let sender: String
    package let header: MessageHeader
    package let headerBytes: [UInt8]
    package let ciphertext: [UInt8]
    package let signature: [UInt8]
    package let messageId: String
    /// The id of the message an edit or delete refers to; nil for a new message.
    package let refersTo: String?

    package init(conversation: ConversationID, sender: String, header: MessageHeader, headerBytes: [UInt8],
                 ciphertext: [UInt8], signature: [UInt8]) {
        self.conversation = conversation
        self.sender = sender
        self.header = header
        self.headerBytes = headerBytes
        self.ciphertext = ciphertext
        self.signature = signature
        self.messageId = Base64URL.encode(header.messageId)
        self.refersTo = header.refersTo.isEmpty ? nil : Base64URL.encode(header.refersTo)
    }

    /// The conversation's id as its rows name it.
    package var conversationId: String { conversation.text }

    package var key: MessageKey { MessageKey(conversationId: conversationId, messageId: messageId) }
}

/// The checks every message passes, on whichever path it is stored: the sender is a member, the
/// server's copies of header fields match the header, the epoch is current, the expiry is within
/// the conversation's signed timer, and an edit or delete names a live message of its own author.
package enum MessageRules {
    package static let noSuchConversation = Problem.notFound("No such conversation.")
    package static let staleEpoch = Problem(status: 409, slug: "stale-epoch", title: "Stale epoch",
                                            detail: "The conversation's membership changed: fetch the ops, start a new chain and send again.")
    package static let idConflict = Problem(status: 409, slug: "message-id-conflict", title: "Message id conflict",
                                            detail: "Another message already has this id.")

    /// Whether `message` repeats `earlier` byte for byte (answered as a repeat) or takes its id
    /// with other bytes (refused).
    package static func checkRepeat(_ message: PendingMessage, of earlier: MessageRecord) throws {
        guard earlier.header == message.headerBytes, earlier.ciphertext == message.ciphertext || earlier.deletedAt != nil,
              earlier.signature == message.signature else { throw idConflict }
    }

    /// The sender is a member (anyone else learns nothing) and the header names this
    /// conversation and the sender; returns the conversation.
    package static func checkSender(_ message: PendingMessage, in conversation: BatchConversation?) throws -> BatchConversation {
        guard let conversation, conversation.members.contains(message.sender) else { throw noSuchConversation }
        guard message.header.convId == message.conversation.bytes else { throw Problem.invalidField("header", "names another conversation") }
        guard message.header.senderUserId == message.sender else { throw Problem.forbidden("A message's header names its sender, the caller.") }
        return conversation
    }

    /// Checks a message that is not a repeat against its conversation as read; returns the expiry
    /// the server keeps.
    package static func checkNew(_ message: PendingMessage, in conversation: BatchConversation, original: MessageRecord?,
                                 now: Timestamp, limits: MessagingLimits) throws -> Int64 {
        guard message.header.epoch == conversation.record.epoch else { throw staleEpoch }
        guard abs(Int64(message.header.sentAt) - now.millis) <= ProtocolBounds.clockWindowMillis else {
            throw Problem.invalidField("header", "sentAt must be within a day of the server's clock (the device's clock may be wrong)")
        }
        let expiresAt = try checkExpiry(message.header, conversation: conversation.record, now: now, limits: limits)
        if message.refersTo != nil {
            try checkOriginal(original, of: message, expiresAt: expiresAt, now: now)
        }
        return expiresAt
    }

    /// An edit or delete names a live message of the same author, not itself an edit or deleted,
    /// and an edit cannot outlive the original's expiry.
    static func checkOriginal(_ original: MessageRecord?, of message: PendingMessage, expiresAt: Int64, now: Timestamp) throws {
        guard let original, original.expiresAt == 0 || original.expiresAt > now.millis else {
            throw Problem.invalidField("header", "refers to a message that does not exist")
        }
        guard original.senderId == message.sender else { throw Problem.forbidden("Only a message's author edits or deletes it.") }
        guard original.kind == Int64(MessageHeader.Kind.message.rawValue), original.deletedAt == nil else {
            throw Problem.invalidField("header", "refers to a message that was deleted or is itself an edit")
        }
        if original.expiresAt > 0, expiresAt == 0 || expiresAt > original.expiresAt {
            throw Problem.invalidField("header", "an edit cannot outlive the original's expiry")
        }
    }

    /// The expiry the server keeps: the header's, which must be in the future and, when the
    /// conversation's signed timer is on, no later than now + timer (plus clock skew).
    package static func checkExpiry(_ header: MessageHeader, conversation: ConversationRecord, now: Timestamp, limits: MessagingLimits) throws -> Int64 {
        guard header.expiresAt <= UInt64(Int64.max) else { throw Problem.invalidField("header", "expiry out of range") }
        let expiresAt = Int64(header.expiresAt)
        let timer = Int64(conversation.settings.disappearSeconds) * 1000
        if timer > 0 {
            guard expiresAt > 0 else { throw Problem.invalidField("header", "disappearing messages are on: the header needs an expiry") }
            guard expiresAt <= now.millis + timer + limits.clockSkewMillis else {
                throw Problem.invalidField("header", "expiry is later than the conversation's timer allows")
            }
        }
        if expiresAt > 0, expiresAt <= now.millis { throw Problem.invalidField("header", "expiry is in the past") }
        return expiresAt
    }
}
