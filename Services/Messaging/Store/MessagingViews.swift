import CircleCore
import CircleProtocol
import Foundation

/// Binary fields on the wire are unpadded base64url (PROTOCOL 1); these decode them with the
/// field's name in the error.
package enum WireBytes {
    package static func decode(_ text: String, field: String, count: Int? = nil, max: Int? = nil) throws -> [UInt8] {
        guard let data = Base64URL.decode(text) else { throw Problem.invalidField(field, "must be unpadded base64url") }
        let bytes = Array(data)
        if let count, bytes.count != count { throw Problem.invalidField(field, "must be \(count) bytes") }
        if let max, bytes.count > max { throw Problem.invalidField(field, "must be at most \(max) bytes") }
        return bytes
    }

    package static func encode(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }

    /// A conversation id from the path; a malformed one is answered like an unknown one (404).
    package static func conversationId(_ text: String) throws -> ConversationID {
        guard let id = ConversationID(text: text) else { throw Problem.notFound("No such conversation.") }
        return id
    }
}

/// A signed membership op as JSON.
package struct WireOp: Codable, Sendable {
    package let op: String
    package let signature: String

    package func signed(field: String) throws -> SignedOp {
        SignedOp(bytes: try WireBytes.decode(op, field: "\(field).op", max: 1024),
                 signature: try WireBytes.decode(signature, field: "\(field).signature", count: 64))
    }

    package init(op: String, signature: String) {
        self.op = op
        self.signature = signature
    }

    package init(_ signed: SignedOp) {
        op = WireBytes.encode(signed.bytes)
        signature = WireBytes.encode(signed.signature)
    }
}
// MARK: Responses and event data

package struct SettingsView: Codable, Sendable, Equatable {
    package let kind: String
    package let disappearSeconds: Int64
    package let readReceipts: Bool
    /// 0: messages are kept until deleted.
    package let retentionDays: Int64

    package init(kind: String, disappearSeconds: Int64, readReceipts: Bool, retentionDays: Int64) {
        self.kind = kind
        self.disappearSeconds = disappearSeconds
        self.readReceipts = readReceipts
        self.retentionDays = retentionDays
    }
}

package struct MemberView: Codable, Sendable {
    package let userId: String
    package let role: String
    package let fingerprint: String

    package init(userId: String, role: String, fingerprint: String) {
        self.userId = userId
        self.role = role
        self.fingerprint = fingerprint
    }
}

package struct ConversationSummary: Codable, Sendable {
    package let id: String
    package let kind: String
    package let head: Int64
    package let epoch: String
    package let lastSeq: Int64
    package let readSeq: Int64
    package let unread: Int64
    package let role: String
    package let updatedAt: Int64

    package init(id: String, kind: String, head: Int64, epoch: String, lastSeq: Int64, readSeq: Int64, unread: Int64, role: String, updatedAt: Int64) {
        self.id = id
        self.kind = kind
        self.head = head
        self.epoch = epoch
        self.lastSeq = lastSeq
        self.readSeq = readSeq
        self.unread = unread
        self.role = role
        self.updatedAt = updatedAt
    }
}

package struct ConversationList: Codable, Sendable {
    package let conversations: [ConversationSummary]

    package init(conversations: [ConversationSummary]) {
        self.conversations = conversations
    }
}

package struct ConversationDetail: Codable, Sendable {
    package let id: String
    package let head: Int64
    package let epoch: String
    package let settings: SettingsView
    package let members: [MemberView]
    package let lastSeq: Int64
    package let readSeq: Int64
    package let readReceipts: Bool

    package init(id: String, head: Int64, epoch: String, settings: SettingsView, members: [MemberView], lastSeq: Int64, readSeq: Int64, readReceipts: Bool) {
        self.id = id
        self.head = head
        self.epoch = epoch
        self.settings = settings
        self.members = members
        self.lastSeq = lastSeq
        self.readSeq = readSeq
        self.readReceipts = readReceipts
    }
}

package struct OpView: Codable, Sendable {
    package let conversationId: String
    package let n: Int64
    package let op: String
    package let signature: String
    package let epoch: String

    package init(conversationId: String, n: Int64, op: String, signature: String, epoch: String) {
        self.conversationId = conversationId
        self.n = n
        self.op = op
        self.signature = signature
        self.epoch = epoch
    }
}

package struct OpList: Codable, Sendable {
    package let ops: [OpView]
    package let head: Int64

    package init(ops: [OpView], head: Int64) {
        self.ops = ops
        self.head = head
    }
}

package struct MessageView: Codable, Sendable, Equatable {
    package let conversationId: String
    package let id: String
    package let seq: Int64
    package let sender: String
    package let header: String
    package let ciphertext: String
    package let signature: String
    package let expiresAt: Int64
    package let createdAt: Int64
    package let editedBy: String?
    package let deleted: Bool

    package init(conversationId: String, id: String, seq: Int64, sender: String, header: String, ciphertext: String, signature: String, expiresAt: Int64, createdAt: Int64, editedBy: String?, deleted: Bool) {
        self.conversationId = conversationId
        self.id = id
        self.seq = seq
        self.sender = sender
        self.header = header
        self.ciphertext = ciphertext
        self.signature = signature
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.editedBy = editedBy
        self.deleted = deleted
    }
}

package struct MessagePage: Codable, Sendable {
    package let messages: [MessageView]
    package let more: Bool
    package let lastSeq: Int64

    package init(messages: [MessageView], more: Bool, lastSeq: Int64) {
        self.messages = messages
        self.more = more
        self.lastSeq = lastSeq
    }
}

package struct SentMessage: Codable, Sendable {
    package let id: String
    package let seq: Int64
    package let duplicate: Bool

    package init(id: String, seq: Int64, duplicate: Bool) {
        self.id = id
        self.seq = seq
        self.duplicate = duplicate
    }
}

package struct EnvelopeView: Codable, Sendable {
    package let conversationId: String
    package let epoch: String
    package let sender: String
    package let deviceId: String
    package let generation: UInt32
    package let recipient: String
    package let enc: String
    package let ciphertext: String
    package let signature: String

    package init(conversationId: String, epoch: String, sender: String, deviceId: String, generation: UInt32, recipient: String, enc: String, ciphertext: String, signature: String) {
        self.conversationId = conversationId
        self.epoch = epoch
        self.sender = sender
        self.deviceId = deviceId
        self.generation = generation
        self.recipient = recipient
        self.enc = enc
        self.ciphertext = ciphertext
        self.signature = signature
    }
}

package struct EnvelopeList: Codable, Sendable {
    package let envelopes: [EnvelopeView]
    /// Whether more envelopes follow; ask again with `after=next`.
    package let more: Bool
    package let next: String?

    package init(envelopes: [EnvelopeView], more: Bool, next: String?) {
        self.envelopes = envelopes
        self.more = more
        self.next = next
    }
}

package struct EnvelopesStored: Codable, Sendable {
    package let stored: Int
    package let duplicates: Int

    package init(stored: Int, duplicates: Int) {
        self.stored = stored
        self.duplicates = duplicates
    }
}

package struct ReadMarker: Codable, Sendable, Equatable {
    package let conversationId: String
    package let userId: String
    package let seq: Int64
    package let readAt: Int64

    package init(conversationId: String, userId: String, seq: Int64, readAt: Int64) {
        self.conversationId = conversationId
        self.userId = userId
        self.seq = seq
        self.readAt = readAt
    }
}

package struct ReadMarkers: Codable, Sendable {
    package let reads: [ReadMarker]

    package init(reads: [ReadMarker]) {
        self.reads = reads
    }
}

package struct ConversationCreated: Codable, Sendable {
    package let conversationId: String
    package let head: Int64
    package let epoch: String

    package init(conversationId: String, head: Int64, epoch: String) {
        self.conversationId = conversationId
        self.head = head
        self.epoch = epoch
    }
}

extension MembershipOp.Role {
    package var name: String {
        switch self {
        case .none: "none"
        case .member: "member"
        case .admin: "admin"
        }
    }
}

extension ConversationSettings {
    package var view: SettingsView {
        SettingsView(kind: kind == .direct ? "direct" : "group", disappearSeconds: Int64(disappearSeconds), readReceipts: readReceipts,
                     retentionDays: Int64(retentionDays))
    }
}

/// What a recipient's event log keeps of a new envelope: where it is, not its bytes (live
/// sockets get the whole envelope; a client reading the log fetches it by epoch and sender).
package struct EnvelopeReference: Codable, Sendable, Equatable {
    package let conversationId: String
    package let epoch: String
    package let sender: String
    package let deviceId: String
    package let generation: UInt32
}

/// A conversation's membership or settings changed: its new head and epoch (clients fetch the
/// ops and verify them).
package struct ConversationChanged: Codable, Sendable, Equatable {
    package let conversationId: String
    package let n: Int64
    package let epoch: String

    package init(conversationId: String, n: Int64, epoch: String) {
        self.conversationId = conversationId
        self.n = n
        self.epoch = epoch
    }
}
