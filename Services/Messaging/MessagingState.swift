import CircleCore
import CircleEvents
import CircleHTTP
import CircleKit
import CircleStore
import Hummingbird
import Logging
import SQLKit

/// What the messaging controllers share.
struct MessagingState: Sendable {
    let store: any DatabaseStore
    let events: EventPublisher
    let clock: any WallClock
    let logger: Logger
    let limits: MessagingLimits
    /// Stores new messages in batches.
    let writer: MessageWriter

    /// The conversation and the caller's membership, or 404 for anyone else: a non-member learns
    /// nothing, not even that the conversation exists.
    func membership(_ id: String, _ userId: String, in db: any SQLDatabase) async throws -> (ConversationRecord, MemberRecord) {
        _ = try WireBytes.conversationId(id)
        guard let found = try await ConversationRepository.conversation(id, member: userId, in: db) else {
            throw Problem.notFound("No such conversation.")
        }
        return found
    }
}

/// Size limits of the messaging API.
struct MessagingLimits: Sendable {
    /// The largest ciphertext: the largest padded plaintext (128 KiB bucket) plus the GCM tag.
    var maximumCiphertext = 128 * 1024 + 16
    /// The largest header (its fields are fixed-size).
    var maximumHeader = 256
    /// Ops accepted with a new conversation (genesis excluded).
    var maximumCreationOps = MembershipChain.maximumMembers + 8
    /// Envelopes accepted in one request.
    var maximumEnvelopes = MembershipChain.maximumMembers
    /// How far into the future a sender's clock may be, for expiry checks.
    var clockSkewMillis: Int64 = 5 * 60 * 1000
}

/// Maps CircleKit's refusals of an op to problems.
enum OpProblems {
    static func map(_ error: any Error) -> any Error {
        guard let error = error as? CircleKitError else { return error }
        switch error {
        case .refused(let why) where why.hasPrefix("the op is not on top of the head"):
            return Problem(status: 409, slug: "stale-head", title: "Stale head", detail: "The op is not on top of the conversation's current head: fetch the ops and try again.")
        case .refused(let why): return Problem(status: 422, slug: "refused-op", title: "Refused op", detail: "The op breaks the membership rules: \(why).")
        case .badSignature: return Problem(status: 422, slug: "bad-signature", title: "Bad signature", detail: "The op's signature does not verify under the actor's identity key.")
        case .malformed(let why): return Problem.invalidField("op", why)
        default: return Problem(status: 422, slug: "refused-op", title: "Refused op", detail: "\(error)")
        }
    }
}

