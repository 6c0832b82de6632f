import CircleCore
import CircleHTTP
import CircleProtocol
import Foundation
import MessagingCore
import MessagingStore


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
