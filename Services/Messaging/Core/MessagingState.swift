import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Hummingbird
import Logging
import MessagingStore
import SQLKit

/// What the messaging controllers share.
package struct MessagingState: Sendable {
    package let store: any DatabaseStore
    package let events: EventPublisher
    package let clock: any WallClock
    package let logger: Logger
    package let limits: MessagingLimits
    /// Stores new messages in batches.
    package let writer: MessageWriter
    /// The named rate limits (messages sent, envelopes posted).
    package let rateLimiter: RateLimiter

    package init(store: any DatabaseStore, events: EventPublisher, clock: any WallClock, logger: Logger, limits: MessagingLimits, writer: MessageWriter,
                 rateLimiter: RateLimiter) {
        self.rateLimiter = rateLimiter
        self.store = store
        self.events = events
        self.clock = clock
        self.logger = logger
        self.limits = limits
        self.writer = writer
    }

    /// The conversation and the caller's membership, or 404 for anyone else: a non-member learns
    /// nothing, not even that the conversation exists.
    package func membership(_ id: String, _ userId: String, in db: any SQLDatabase) async throws -> (ConversationRecord, MemberRecord) {
        _ = try WireBytes.conversationId(id)
        guard let found = try await ConversationRepository.conversation(id, member: userId, in: db) else {
            throw Problem.notFound("No such conversation.")
        }
        return found
    }
}

/// Size limits of the messaging API.
package struct MessagingLimits: Sendable {
    /// The largest ciphertext: the largest padded plaintext (128 KiB bucket), the GCM tag and the
    /// 32-byte key commitment.
    package var maximumCiphertext = 128 * 1024 + 16 + 32
    /// The largest header (its fields are fixed-size).
    package var maximumHeader = 256
    /// Ops accepted with a new conversation (genesis excluded).
    package var maximumCreationOps = MembershipChain.maximumMembers + 8
    /// Envelopes accepted in one request: a whole rotation (one per member) of the largest group,
    /// twice over, so a chain for the largest group always fits in one request (about 400 bytes
    /// of JSON each: 1,000 are well inside the body limit).
    package var maximumEnvelopes = 2 * MembershipChain.maximumMembers
    /// How far into the future a sender's clock may be, for expiry checks.
    package var clockSkewMillis: Int64 = 5 * 60 * 1000

    package init(clockSkewMillis: Int64 = 5 * 60 * 1000) {
        self.clockSkewMillis = clockSkewMillis
    }
}

/// Maps the protocol's refusals of an op to problems, by case.
package enum OpProblems {
    /// An op's `createdAt` is within a day of the server's clock when it is accepted (PROTOCOL 1).
    package static func checkTime(_ op: MembershipOp, now: Timestamp, field: String = "op") throws {
        let createdAt = Int64(op.createdAt)
        guard abs(createdAt - now.millis) <= ProtocolBounds.clockWindowMillis else {
            throw Problem.invalidField(field, "createdAt must be within a day of the server's clock (the device's clock may be wrong)")
        }
    }

    package static func map(_ error: any Error) -> any Error {
        guard let error = error as? ProtocolError else { return error }
        switch error {
        case .staleHead:
            return Problem(status: 409, slug: "stale-head", title: "Stale head", detail: "The op is not on top of the conversation's current head: fetch the ops and try again.")
        case .refused(let why): return Problem(status: 422, slug: "refused-op", title: "Refused op", detail: "The op breaks the membership rules: \(why).")
        case .badSignature: return Problem(status: 422, slug: "bad-signature", title: "Bad signature", detail: "The op's signature does not verify under the actor's identity key.")
        case .malformed(let why): return Problem.invalidField("op", why)
        default: return Problem(status: 422, slug: "refused-op", title: "Refused op", detail: "\(error)")
        }
    }
}

