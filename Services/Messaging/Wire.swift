import CircleCore
import CircleHTTP
import CircleKit
import Foundation

/// Binary fields on the wire are unpadded base64url (PROTOCOL 1); these decode them with the
/// field's name in the error.
enum WireBytes {
    static func decode(_ text: String, field: String, count: Int? = nil, max: Int? = nil) throws -> [UInt8] {
        guard let data = Base64URL.decode(text) else { throw Problem.invalidField(field, "must be unpadded base64url") }
        let bytes = Array(data)
        if let count, bytes.count != count { throw Problem.invalidField(field, "must be \(count) bytes") }
        if let max, bytes.count > max { throw Problem.invalidField(field, "must be at most \(max) bytes") }
        return bytes
    }

    static func encode(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }

    /// A conversation id from the path: base64url of the 32-byte `H(genesis)`.
    static func conversationId(_ text: String) throws -> [UInt8] {
        guard let data = Base64URL.decode(text), data.count == 32 else { throw Problem.notFound("No such conversation.") }
        return Array(data)
    }
}

/// A signed membership op as JSON.
struct WireOp: Codable, Sendable {
    let op: String
    let signature: String

    func signed(field: String) throws -> SignedOp {
        SignedOp(bytes: try WireBytes.decode(op, field: "\(field).op", max: 1024),
                 signature: try WireBytes.decode(signature, field: "\(field).signature", count: 64))
    }

    init(op: String, signature: String) {
        self.op = op
        self.signature = signature
    }

    init(_ signed: SignedOp) {
        op = WireBytes.encode(signed.bytes)
        signature = WireBytes.encode(signed.signature)
    }
}

struct CreateConversationRequest: StrictDecodable, Sendable {
    let genesis: WireOp
    let ops: [WireOp]?
    static let allowedKeys: Set<String> = ["genesis", "ops"]
}

struct AppendOpRequest: StrictDecodable, Sendable {
    let op: String
    let signature: String
    static let allowedKeys: Set<String> = ["op", "signature"]
}

struct SendMessageRequest: StrictDecodable, Sendable {
    let header: String
    let ciphertext: String
    let signature: String
    static let allowedKeys: Set<String> = ["header", "ciphertext", "signature"]
}

struct WireEnvelope: Codable, Sendable {
    let epoch: String
    let deviceId: String
    let generation: UInt32
    let recipient: String
    let enc: String
    let ciphertext: String
    let signature: String
}

struct PostEnvelopesRequest: StrictDecodable, Sendable {
    let envelopes: [WireEnvelope]
    static let allowedKeys: Set<String> = ["envelopes"]
}

struct ReadRequest: StrictDecodable, Sendable {
    let seq: Int64
    static let allowedKeys: Set<String> = ["seq"]
}

struct PreferencesRequest: StrictDecodable, Sendable {
    let readReceipts: Bool
    static let allowedKeys: Set<String> = ["readReceipts"]
}

// MARK: Responses and event data

struct SettingsView: Codable, Sendable, Equatable {
    let kind: String
    let disappearSeconds: Int64
    let readReceipts: Bool
}

struct MemberView: Codable, Sendable {
    let userId: String
    let role: String
    let fingerprint: String
}

struct ConversationSummary: Codable, Sendable {
    let id: String
    let kind: String
    let head: Int64
    let epoch: String
    let lastSeq: Int64
    let readSeq: Int64
    let unread: Int64
    let role: String
    let updatedAt: Int64
}

struct ConversationList: Codable, Sendable { let conversations: [ConversationSummary] }

struct ConversationDetail: Codable, Sendable {
    let id: String
    let head: Int64
    let epoch: String
    let settings: SettingsView
    let members: [MemberView]
    let lastSeq: Int64
    let readSeq: Int64
    let readReceipts: Bool
}

struct OpView: Codable, Sendable {
    let conversationId: String
    let n: Int64
    let op: String
    let signature: String
    let epoch: String
}

struct OpList: Codable, Sendable { let ops: [OpView]; let head: Int64 }

struct MessageView: Codable, Sendable, Equatable {
    let conversationId: String
    let id: String
    let seq: Int64
    let sender: String
    let header: String
    let ciphertext: String
    let signature: String
    let expiresAt: Int64
    let createdAt: Int64
    let editedBy: String?
    let deleted: Bool
}

struct MessagePage: Codable, Sendable { let messages: [MessageView]; let more: Bool; let lastSeq: Int64 }

struct SentMessage: Codable, Sendable { let id: String; let seq: Int64; let duplicate: Bool }

struct EnvelopeView: Codable, Sendable {
    let conversationId: String
    let epoch: String
    let sender: String
    let deviceId: String
    let generation: UInt32
    let recipient: String
    let enc: String
    let ciphertext: String
    let signature: String
}

struct EnvelopeList: Codable, Sendable { let envelopes: [EnvelopeView] }

struct EnvelopesStored: Codable, Sendable { let stored: Int; let duplicates: Int }

struct ReadMarker: Codable, Sendable, Equatable { let conversationId: String; let userId: String; let seq: Int64; let readAt: Int64 }

struct ReadMarkers: Codable, Sendable { let reads: [ReadMarker] }

struct ConversationCreated: Codable, Sendable { let conversationId: String; let head: Int64; let epoch: String }

extension MembershipOp.Role {
    var name: String {
        switch self {
        case .none: "none"
        case .member: "member"
        case .admin: "admin"
        }
    }
}

extension ConversationSettings {
    var view: SettingsView {
        SettingsView(kind: kind == .direct ? "direct" : "group", disappearSeconds: Int64(disappearSeconds), readReceipts: readReceipts)
    }
}
