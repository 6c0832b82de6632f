import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Foundation
import Hummingbird
import MessagingCore
import MessagingStore
import SQLKit

/// `/api/v1/conversations/{id}/messages` and read markers (PROTOCOL 6, 7).
///
/// The server stores the header, ciphertext and signature as the sender made them and checks its
/// own copies of header fields against the header: conversation, sender (the caller), current
/// epoch, message id, expiry within the signed timer, edits and deletes only of the sender's own
/// messages. A message id is idempotent: the same bytes again answer with the stored message;
/// different bytes under the same id are refused.
struct MessageController: Sendable {
    let state: MessagingState

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.group("/api/v1/conversations")
        group.post("/{id}/messages", use: send)
        group.get("/{id}/messages", use: page)
        group.post("/{id}/read", use: read)
        group.get("/{id}/reads", use: reads)
    }

    /// Thrown inside the transaction to roll back a repeated send; answered with the original.
    struct Duplicate: Error { let message: MessageRecord }

    @Sendable func send(request: Request, context: CircleRequestContext) async throws -> JSONResponse<SentMessage> {
        let identity = try context.requireIdentity()
        let id = try context.parameters.require("id")
        let convId = try WireBytes.conversationId(id)
        let body = try await request.decodeJSON(as: SendMessageRequest.self, context: context)
        let headerBytes = try WireBytes.decode(body.header, field: "header", max: state.limits.maximumHeader)
        let ciphertext = try WireBytes.decode(body.ciphertext, field: "ciphertext", max: state.limits.maximumCiphertext)
        let signature = try WireBytes.decode(body.signature, field: "signature", count: 64)
        guard ciphertext.count >= 16 + MessagePadding.minimumBucket else { throw Problem.invalidField("ciphertext", "is shorter than the smallest padded message") }
        let header: MessageHeader
        do { header = try MessageHeader(bytes: headerBytes) } catch { throw Problem.invalidField("header", "\(error)") }
        let messageId = Base64URL.encode(header.messageId)
        let refersTo = header.refersTo.isEmpty ? nil : Base64URL.encode(header.refersTo)
        if refersTo == nil {
            // New messages go through the batching writer.
            let pending = PendingMessage(conversationId: id, convId: convId, sender: identity.userId, header: header, headerBytes: headerBytes,
                                         ciphertext: ciphertext, signature: signature, messageId: messageId)
            switch try await state.writer.submit(pending) {
            case .stored(let record): return JSONResponse(SentMessage(id: record.id, seq: record.seq, duplicate: false), status: .created)
            case .duplicate(let record): return JSONResponse(SentMessage(id: record.id, seq: record.seq, duplicate: true), status: .ok)
            }
        }
        let now = state.clock.now()
        let limits = state.limits
        do {
            let (stored, events) = try await state.store.write { db in
                // One statement takes the conversation's row lock and its next sequence number
                // (rolled back with everything else if the message is refused below).
                guard let conversation = try await ConversationRepository.nextSeq(id, at: now, in: db) else { throw Problem.notFound("No such conversation.") }
                let members = try await ConversationRepository.memberIds(of: id, in: db)
                guard members.contains(identity.userId) else { throw Problem.notFound("No such conversation.") }
                guard header.convId == convId else { throw Problem.invalidField("header", "names another conversation") }
                guard header.senderUserId == identity.userId else { throw Problem.forbidden("A message's header names its sender, the caller.") }
                if let existing = try await MessageRepository.message(id, id: messageId, in: db) {
                    guard existing.header == headerBytes, existing.ciphertext == ciphertext || existing.deletedAt != nil, existing.signature == signature else {
                        throw Problem(status: 409, slug: "message-id-conflict", title: "Message id conflict", detail: "Another message already has this id.")
                    }
                    throw Duplicate(message: existing)
                }
                guard header.epoch == conversation.epoch else {
                    throw Problem(status: 409, slug: "stale-epoch", title: "Stale epoch", detail: "The conversation's membership changed: fetch the ops, start a new chain and send again.")
                }
                let expiresAt = try MessageRules.checkExpiry(header, conversation: conversation, now: now, limits: limits)
                if let refersTo {
                    guard let original = try await MessageRepository.message(id, id: refersTo, in: db),
                          original.expiresAt == 0 || original.expiresAt > now.millis else {
                        throw Problem.invalidField("header", "refers to a message that does not exist")
                    }
                    guard original.senderId == identity.userId else { throw Problem.forbidden("Only a message's author edits or deletes it.") }
                    guard original.kind == Int64(MessageHeader.Kind.message.rawValue), original.deletedAt == nil else {
                        throw Problem.invalidField("header", "refers to a message that was deleted or is itself an edit")
                    }
                    if original.expiresAt > 0, expiresAt == 0 || expiresAt > original.expiresAt {
                        throw Problem.invalidField("header", "an edit cannot outlive the original's expiry")
                    }
                }
                let seq = conversation.lastSeq
                let message = MessageRecord(
                    conversationId: id, id: messageId, seq: seq, senderId: identity.userId, kind: Int64(header.kind.rawValue),
                    refersTo: refersTo, header: headerBytes, ciphertext: ciphertext, signature: signature, expiresAt: expiresAt,
                    createdAt: now.millis, editedBy: nil, deletedAt: nil)
                try await MessageRepository.insert(message, in: db)
                if let refersTo {
                    if header.kind == .edit {
                        try await MessageRepository.markEdited(id, id: refersTo, by: messageId, in: db)
                    } else {
                        try await MessageRepository.markDeleted(id, id: refersTo, at: now, in: db)
                    }
                }
                let data = EventData.json(message.view)
                let events = try await UserEventLog.append(members.map { NewUserEvent(userId: $0, type: "message.new", data: data) }, at: now, in: db)
                return (message, events)
            }
            await state.events.publish(events)
            return JSONResponse(SentMessage(id: stored.id, seq: stored.seq, duplicate: false), status: .created)
        } catch let duplicate as Duplicate {
            return JSONResponse(SentMessage(id: duplicate.message.id, seq: duplicate.message.seq, duplicate: true), status: .ok)
        }
    }

    @Sendable func page(request: Request, context: CircleRequestContext) async throws -> JSONResponse<MessagePage> {
        let identity = try context.requireIdentity()
        let id = try context.parameters.require("id")
        var after: Int64 = 0
        var limit = 100
        if let text = request.uri.queryParameters["after"] {
            guard let value = Int64(text), value >= 0 else { throw Problem.invalidField("after", "must be a whole number of at least 0") }
            after = value
        }
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(text), (1...500).contains(value) else { throw Problem.invalidField("limit", "must be from 1 to 500") }
            limit = value
        }
        let now = state.clock.now()
        let (start, size) = (after, limit)
        let page = try await state.store.read { db in
            let (conversation, _) = try await state.membership(id, identity.userId, in: db)
            let messages = try await MessageRepository.page(id, after: start, limit: size + 1, at: now, in: db)
            return MessagePage(messages: messages.prefix(size).map(\.view), more: messages.count > size, lastSeq: conversation.lastSeq)
        }
        return JSONResponse(page)
    }

    /// Moves the caller's read marker forward. The caller's other devices always hear of it;
    /// other members only when the conversation's signed setting, the reader's preference and
    /// their own preference all allow receipts.
    @Sendable func read(request: Request, context: CircleRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let id = try context.parameters.require("id")
        let body = try await request.decodeJSON(as: ReadRequest.self, context: context)
        let now = state.clock.now()
        let events = try await state.store.write { db in
            let (conversation, me) = try await state.membership(id, identity.userId, in: db)
            guard body.seq >= 0, body.seq <= conversation.lastSeq else {
                throw Problem.invalidField("seq", "must be from 0 to the conversation's last sequence number (\(conversation.lastSeq))")
            }
            guard try await ConversationRepository.markRead(id, userId: identity.userId, seq: body.seq, at: now, in: db) else { return [UserEvent]() }
            var told = [identity.userId]
            if conversation.settings.readReceipts, me.receipts {
                told += try await ConversationRepository.members(of: id, in: db).filter { $0.userId != identity.userId && $0.receipts }.map(\.userId)
            }
            let data = EventData.json(ReadMarker(conversationId: id, userId: identity.userId, seq: body.seq, readAt: now.millis))
            return try await UserEventLog.append(told.map { NewUserEvent(userId: $0, type: "conversation.read", data: data) }, at: now, in: db)
        }
        await state.events.publish(events)
        return Response(status: .noContent)
    }

    /// Read markers the caller may see: always their own; others' only when receipts are on in
    /// the conversation, for the caller, and for that member.
    @Sendable func reads(request: Request, context: CircleRequestContext) async throws -> JSONResponse<ReadMarkers> {
        let identity = try context.requireIdentity()
        let id = try context.parameters.require("id")
        let markers = try await state.store.read { db in
            let (conversation, me) = try await state.membership(id, identity.userId, in: db)
            let all = try await ConversationRepository.reads(id, in: db)
            guard conversation.settings.readReceipts, me.receipts else { return all.filter { $0.userId == identity.userId } }
            let sharing = Set(try await ConversationRepository.members(of: id, in: db).filter(\.receipts).map(\.userId))
            return all.filter { $0.userId == identity.userId || sharing.contains($0.userId) }
        }
        return JSONResponse(ReadMarkers(reads: markers))
    }
}
