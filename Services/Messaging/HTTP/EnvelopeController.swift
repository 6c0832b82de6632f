import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Foundation
import GatewayStore
import Hummingbird
import MessagingCore
import MessagingStore
import SQLKit

/// `/api/v1/conversations/{id}/envelopes` (PROTOCOL 7): sender chain keys sealed to each member.
///
/// The caller is the sender; every envelope must be for the current epoch and a member at head,
/// and its signature must verify under the caller's identity key. At most one envelope exists
/// per (conversation, epoch, sender, device, generation, recipient): the same bytes again are
/// accepted as a repeat, different bytes refused, and the whole request changes nothing.
/// Envelopes are served only to their recipient.
struct EnvelopeController: Sendable {
    let state: MessagingState

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/conversations")
        group.post("/{id}/envelopes", use: post)
        group.get("/{id}/envelopes", use: list)
    }

    /// An envelope's sealed plaintext: version, 32-byte chain key, start index, then the GCM tag.
    static let ciphertextLength = 1 + 32 + 4 + 16

    @Sendable func post(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<EnvelopesStored> {
        let identity = context.identity
        let id = try context.parameters.require("id")
        let conversation = try WireBytes.conversationId(id)
        let body = try await request.decodeJSON(as: PostEnvelopesRequest.self, context: context)
        try await state.rateLimiter.check(.envelopePost, for: identity.userId)
        guard !body.envelopes.isEmpty, body.envelopes.count <= state.limits.maximumEnvelopes else {
            throw Problem.invalidField("envelopes", "must hold from 1 to \(state.limits.maximumEnvelopes) envelopes")
        }
        let records: [(EnvelopeRecord, Envelope)] = try body.envelopes.enumerated().map { index, wire in
            let field = "envelopes[\(index)]"
            let epoch = try WireBytes.decode(wire.epoch, field: "\(field).epoch", count: 32)
            let device = try WireBytes.decode(wire.deviceId, field: "\(field).deviceId", count: 16)
            let enc = try WireBytes.decode(wire.enc, field: "\(field).enc", count: 32)
            let ciphertext = try WireBytes.decode(wire.ciphertext, field: "\(field).ciphertext", count: Self.ciphertextLength)
            let signature = try WireBytes.decode(wire.signature, field: "\(field).signature", count: 64)
            guard UserIdText.isValid(wire.recipient) else { throw Problem.invalidField("\(field).recipient", "must be a user id") }
            let address = EnvelopeAddress(convId: conversation.bytes, epoch: epoch, sender: identity.userId, deviceId: device, generation: wire.generation, recipient: wire.recipient)
            let record = EnvelopeRecord(conversationId: id, epoch: wire.epoch, senderId: identity.userId, deviceId: wire.deviceId,
                                        generation: Int64(wire.generation), recipientId: wire.recipient, enc: enc, ciphertext: ciphertext, signature: signature)
            return (record, Envelope(address: address, enc: enc, ciphertext: ciphertext, signature: signature))
        }
        guard Set(records.map { "\($0.0.epoch)/\($0.0.deviceId)/\($0.0.generation)/\($0.0.recipientId)" }).count == records.count else {
            throw Problem.invalidField("envelopes", "two envelopes have the same address")
        }
        let now = state.clock.now()
        let (result, events) = try await state.store.write { db in
            let (conversation, _) = try await state.membership(id, identity.userId, in: db)
            let members = Set(try await ConversationRepository.memberIds(of: id, in: db))
            guard let senderKey = try await AccountDirectory.keys(for: [identity.userId], in: db)[identity.userId]?.identityKey else {
                throw Problem.unauthorized()
            }
            var stored = 0
            var duplicates = 0
            var events: [NewUserEvent] = []
            for (index, (record, envelope)) in records.enumerated() {
                guard envelope.address.epoch == conversation.epoch else {
                    throw Problem(status: 409, slug: "stale-epoch", title: "Stale epoch", detail: "envelopes[\(index)] is not for the current epoch: fetch the ops and start a new chain.")
                }
                guard members.contains(record.recipientId) else {
                    throw Problem.invalidField("envelopes[\(index)].recipient", "is not a member of the conversation")
                }
                guard envelope.verify(senderIdentity: senderKey) else {
                    throw Problem(status: 422, slug: "bad-signature", title: "Bad signature", detail: "envelopes[\(index)] is not signed by the caller's identity key for this address.")
                }
                if let existing = try await MessageRepository.envelope(like: record, in: db) {
                    guard existing == record else {
                        throw Problem(status: 409, slug: "envelope-conflict", title: "Envelope conflict",
                                      detail: "envelopes[\(index)]: a different envelope for this chain and recipient already exists; start a new chain instead.")
                    }
                    duplicates += 1
                    continue
                }
                try await MessageRepository.insertEnvelope(record, at: now, in: db)
                stored += 1
                events.append(NewUserEvent(userId: record.recipientId, type: .envelopeNew, data: EventData.json(record.reference),
                                           live: EventData.json(record.view)))
            }
            return (EnvelopesStored(stored: stored, duplicates: duplicates), try await UserEventLog.append(events, at: now, in: db))
        }
        await state.events.publish(events)
        return JSONResponse(result, status: result.stored > 0 ? .created : .ok)
    }

    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<EnvelopeList> {
        let identity = context.identity
        let id = try context.parameters.require("id")
        let epoch = try request.uri.queryParameters["epoch"].map { text -> String in
            _ = try WireBytes.decode(String(text), field: "epoch", count: 32)
            return String(text)
        }
        let sender = try request.uri.queryParameters["sender"].map { text -> String in
            guard UserIdText.isValid(String(text)) else { throw Problem.invalidField("sender", "must be a user id") }
            return String(text)
        }
        var limit = 500
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(text), (1...2000).contains(value) else { throw Problem.invalidField("limit", "must be from 1 to 2000") }
            limit = value
        }
        let after = try request.uri.queryParameters["after"].map { text -> EnvelopeCursor in
            guard let cursor = EnvelopeCursor(String(text)) else { throw Problem.invalidField("after", "must be the `next` of an earlier page") }
            return cursor
        }
        let size = limit
        let envelopes = try await state.store.read { db in
            _ = try await state.membership(id, identity.userId, in: db)
            return try await MessageRepository.envelopes(id, recipient: identity.userId, epoch: epoch, sender: sender, after: after, limit: size + 1, in: db)
        }
        let page = Array(envelopes.prefix(limit))
        let more = envelopes.count > limit
        return JSONResponse(EnvelopeList(envelopes: page.map(\.view), more: more, next: more ? page.last.map { EnvelopeCursor($0).text } : nil))
    }
}
