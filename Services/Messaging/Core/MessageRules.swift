import CircleCore
import CircleProtocol
import MessagingStore

/// Checks every new message (and edit or delete) passes, whichever path stores it.
package enum MessageRules {
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
