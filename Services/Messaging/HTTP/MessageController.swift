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
        let group = router.authenticated("/api/v1/conversations")
        group.post("/{id}/messages", use: send)
        group.get("/{id}/messages", use: page)
        group.post("/{id}/read", use: read)
        group.get("/{id}/reads", use: reads)
    }

    /// Stores a message (a new one, an edit or a delete): checked, numbered and stored by the
    /// writer; a repeat of an earlier send is answered with the message stored then.
    @Sendable func send(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<SentMessage> {
        let identity = context.identity
        let conversation = try WireBytes.conversationId(try context.parameters.require("id"))
        let body = try await request.decodeJSON(as: SendMessageRequest.self, context: context)
        try await state.rateLimiter.check(.messageSend, for: identity.userId)
        let headerBytes = try WireBytes.decode(body.header, field: "header", max: state.limits.maximumHeader)
        let ciphertext = try WireBytes.decode(body.ciphertext, field: "ciphertext", max: state.limits.maximumCiphertext)
        let signature = try WireBytes.decode(body.signature, field: "signature", count: 64)
        guard ciphertext.count >= 16 + MessageSeal.commitmentSize + MessagePadding.minimumBucket else { throw Problem.invalidField("ciphertext", "is shorter than the smallest padded message") }
        let header: MessageHeader
        do { header = try MessageHeader(bytes: headerBytes) } catch { throw Problem.invalidField("header", "\(error)") }
        let pending = PendingMessage(conversation: conversation, sender: identity.userId, header: header, headerBytes: headerBytes,
                                     ciphertext: ciphertext, signature: signature)
        switch try await state.writer.submit(pending) {
        case .stored(let record): return JSONResponse(SentMessage(id: record.id, seq: record.seq, duplicate: false), status: .created)
        case .duplicate(let record): return JSONResponse(SentMessage(id: record.id, seq: record.seq, duplicate: true), status: .ok)
        }
    }

    @Sendable func page(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<MessagePage> {
        let identity = context.identity
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
    @Sendable func read(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
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
            return try await UserEventLog.append(told.map { NewUserEvent(userId: $0, type: .conversationRead, data: data) }, at: now, in: db)
        }
        await state.events.publish(events)
        return Response(status: .noContent)
    }

    /// Read markers the caller may see: always their own; others' only when receipts are on in
    /// the conversation, for the caller, and for that member.
    @Sendable func reads(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<ReadMarkers> {
        let identity = context.identity
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
