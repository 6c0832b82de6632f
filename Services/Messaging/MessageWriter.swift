import CircleCore
import CircleEvents
import CircleHTTP
import CircleKit
import CircleStore
import Foundation
import Logging
import SQLKit

/// A new message (not an edit or delete) waiting to be stored.
struct PendingMessage: Sendable {
    let conversationId: String
    let convId: [UInt8]
    let sender: String
    let header: MessageHeader
    let headerBytes: [UInt8]
    let ciphertext: [UInt8]
    let signature: [UInt8]
    let messageId: String
}

/// What became of a pending message.
enum WriteOutcome: Sendable {
    case stored(MessageRecord)
    case duplicate(MessageRecord)
}

/// Stores new messages in batches: every message that arrives while a transaction is running
/// joins the next one, which takes a handful of statements however many messages it holds (row
/// locks, members, repeats, one multi-row insert, one event-log append). Each message is checked
/// on its own exactly as a lone one would be; a refused message gets its own answer and does not
/// affect the others. Nobody is answered before the transaction commits.
actor MessageWriter {
    let store: any DatabaseStore
    let events: EventPublisher
    let clock: any WallClock
    let limits: MessagingLimits
    let logger: Logger
    /// The most messages in one transaction.
    let batchLimit: Int

    private var queue: [(PendingMessage, CheckedContinuation<WriteOutcome, any Error>)] = []
    private var running = false

    init(store: any DatabaseStore, events: EventPublisher, clock: any WallClock, limits: MessagingLimits, logger: Logger, batchLimit: Int = 128) {
        self.store = store
        self.events = events
        self.clock = clock
        self.limits = limits
        self.logger = logger
        self.batchLimit = batchLimit
    }

    func submit(_ message: PendingMessage) async throws -> WriteOutcome {
        try await withCheckedThrowingContinuation { continuation in
            queue.append((message, continuation))
            if !running {
                running = true
                Task { await drain() }
            }
        }
    }

    private func drain() async {
        while !queue.isEmpty {
            let batch = Array(queue.prefix(batchLimit))
            queue.removeFirst(batch.count)
            let messages = batch.map(\.0)
            do {
                let (outcomes, stored) = try await write(messages)
                // Committed: the senders may hear first; members hear right after.
                for ((_, continuation), outcome) in zip(batch, outcomes) { continuation.resume(with: outcome) }
                await events.publish(stored)
            } catch {
                logger.error("message batch failed", metadata: ["count": "\(batch.count)", "error": "\(String(reflecting: error))"])
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
        running = false
    }

    /// One transaction for the whole batch; returns each message's outcome and the events to publish.
    private func write(_ messages: [PendingMessage]) async throws -> ([Result<WriteOutcome, any Error>], [UserEvent]) {
        let now = clock.now()
        let limits = self.limits
        let engine = store.engine
        return try await store.write { db in
            let ids = Array(Set(messages.map(\.conversationId))).sorted()
            // Lock the conversations in id order (two writers never wait on each other in a cycle).
            var lockQuery = SQLQueryString("SELECT * FROM conversations WHERE id IN (")
            for (index, id) in ids.enumerated() { lockQuery += index == 0 ? "\(bind: id)" : ", \(bind: id)" }
            lockQuery += ") ORDER BY id\(unsafeRaw: engine == .postgres ? " FOR UPDATE" : "")"
            var conversations: [String: ConversationRecord] = [:]
            for row in try await db.raw(lockQuery).all() {
                let record = try ConversationRepository.decodeConversation(row)
                conversations[record.id] = record
            }
            var membersQuery = SQLQueryString("SELECT conversation_id, user_id FROM conversation_members WHERE conversation_id IN (")
            for (index, id) in ids.enumerated() { membersQuery += index == 0 ? "\(bind: id)" : ", \(bind: id)" }
            membersQuery += ")"
            var members: [String: [String]] = [:]
            for row in try await db.raw(membersQuery).all() {
                members[try row.decode(column: "conversation_id", as: String.self), default: []].append(try row.decode(column: "user_id", as: String.self))
            }
            var existing: [String: MessageRecord] = [:]
            var existingQuery = SQLQueryString("SELECT * FROM messages WHERE (conversation_id, id) IN (VALUES ")
            for (index, message) in messages.enumerated() {
                existingQuery += index == 0 ? "(\(bind: message.conversationId), \(bind: message.messageId))" : ", (\(bind: message.conversationId), \(bind: message.messageId))"
            }
            existingQuery += ")"
            for row in try await db.raw(existingQuery).all() {
                let record = try MessageRepository.decode(row)
                existing["\(record.conversationId)/\(record.id)"] = record
            }

            var outcomes: [Result<WriteOutcome, any Error>] = []
            var accepted: [MessageRecord] = []
            var newEvents: [NewUserEvent] = []
            var lastSeq: [String: Int64] = [:]
            for message in messages {
                let key = "\(message.conversationId)/\(message.messageId)"
                do {
                    guard let conversation = conversations[message.conversationId], let present = members[message.conversationId],
                          present.contains(message.sender) else { throw Problem.notFound("No such conversation.") }
                    guard message.header.convId == message.convId else { throw Problem.invalidField("header", "names another conversation") }
                    guard message.header.senderUserId == message.sender else { throw Problem.forbidden("A message's header names its sender, the caller.") }
                    if let earlier = existing[key] {
                        guard earlier.header == message.headerBytes, earlier.ciphertext == message.ciphertext || earlier.deletedAt != nil,
                              earlier.signature == message.signature else {
                            throw Problem(status: 409, slug: "message-id-conflict", title: "Message id conflict", detail: "Another message already has this id.")
                        }
                        outcomes.append(.success(.duplicate(earlier)))
                        continue
                    }
                    guard message.header.epoch == conversation.epoch else {
                        throw Problem(status: 409, slug: "stale-epoch", title: "Stale epoch", detail: "The conversation's membership changed: fetch the ops, start a new chain and send again.")
                    }
                    let expiresAt = try MessageController.checkExpiry(message.header, conversation: conversation, now: now, limits: limits)
                    let seq = (lastSeq[message.conversationId] ?? conversation.lastSeq) + 1
                    lastSeq[message.conversationId] = seq
                    let record = MessageRecord(
                        conversationId: message.conversationId, id: message.messageId, seq: seq, senderId: message.sender,
                        kind: Int64(MessageHeader.Kind.message.rawValue), refersTo: nil, header: message.headerBytes, ciphertext: message.ciphertext,
                        signature: message.signature, expiresAt: expiresAt, createdAt: now.millis, editedBy: nil, deletedAt: nil)
                    existing[key] = record
                    accepted.append(record)
                    let data = EventData.json(record.view)
                    newEvents += present.map { NewUserEvent(userId: $0, type: "message.new", data: data) }
                    outcomes.append(.success(.stored(record)))
                } catch {
                    outcomes.append(.failure(error))
                }
            }
            guard !accepted.isEmpty else { return (outcomes, []) }
            var seqUpdate = SQLQueryString("UPDATE conversations SET updated_at = \(bind: now.millis), last_seq = CASE id")
            for (id, seq) in lastSeq.sorted(by: { $0.key < $1.key }) { seqUpdate += " WHEN \(bind: id) THEN \(bind: seq)" }
            seqUpdate += " END WHERE id IN ("
            for (index, id) in lastSeq.keys.sorted().enumerated() { seqUpdate += index == 0 ? "\(bind: id)" : ", \(bind: id)" }
            seqUpdate += ")"
            try await db.raw(seqUpdate).run()
            try await MessageRepository.insert(accepted, in: db)
            return (outcomes, try await UserEventLog.append(newEvents, at: now, in: db))
        }
    }
}
