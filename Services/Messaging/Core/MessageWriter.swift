import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Foundation
import Logging
import MessagingStore
import PostgresKit
import PostgresNIO
import SQLKit

/// A new message (not an edit or delete) waiting to be stored.
package struct PendingMessage: Sendable {
    package let conversationId: String
    package let convId: [UInt8]
    package let sender: String
    package let header: MessageHeader
    package let headerBytes: [UInt8]
    package let ciphertext: [UInt8]
    package let signature: [UInt8]
    package let messageId: String

    package init(conversationId: String, convId: [UInt8], sender: String, header: MessageHeader, headerBytes: [UInt8], ciphertext: [UInt8], signature: [UInt8], messageId: String) {
        self.conversationId = conversationId
        self.convId = convId
        self.sender = sender
        self.header = header
        self.headerBytes = headerBytes
        self.ciphertext = ciphertext
        self.signature = signature
        self.messageId = messageId
    }
}

/// What became of a pending message.
package enum WriteOutcome: Sendable {
    case stored(MessageRecord)
    case duplicate(MessageRecord)
}

/// Stores new messages in batches: every message that arrives while a transaction is running
/// joins the next one, which takes a handful of statements however many messages it holds (row
/// locks, members, repeats, one multi-row insert, one event-log append). Each message is checked
/// on its own exactly as a lone one would be; a refused message gets its own answer and does not
/// affect the others. Nobody is answered before the transaction commits.
package actor MessageWriter {
    package let store: any DatabaseStore
    package let events: EventPublisher
    package let clock: any WallClock
    package let limits: MessagingLimits
    package let logger: Logger
    /// The most messages in one transaction.
    package let batchLimit: Int
    /// Runs between the read and the write of a batch stored in one statement (tests use it to
    /// change a conversation in between).
    package let afterRead: (@Sendable () async -> Void)?

    private var queue: [(PendingMessage, CheckedContinuation<WriteOutcome, any Error>)] = []
    private var running = false

    package init(store: any DatabaseStore, events: EventPublisher, clock: any WallClock, limits: MessagingLimits, logger: Logger, batchLimit: Int = 128,
         afterRead: (@Sendable () async -> Void)? = nil) {
        self.afterRead = afterRead
        self.store = store
        self.events = events
        self.clock = clock
        self.limits = limits
        self.logger = logger
        self.batchLimit = batchLimit
    }

    package func submit(_ message: PendingMessage) async throws -> WriteOutcome {
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

    /// How batches were stored, for tests: in one statement, or in a transaction with row locks.
    private(set) var batchesAtOnce = 0
    private(set) var batchesLocked = 0

    /// Batches stored in one statement from the conversations as this writer last left them,
    /// without reading them first (tests).
    private(set) var batchesFromMemory = 0

    /// Conversations as this writer last read or wrote them (PostgreSQL): enough to check and
    /// number a batch without reading them first. `trusted` once a read found a conversation as
    /// this writer had left it (no other writer in between); an entry is only ever a guess, since
    /// the statement that stores a batch still checks each conversation's sequence number and
    /// epoch (which every membership or settings change moves) and stores nothing if one differs.
    private var known: [String: KnownConversation] = [:]
    package struct KnownConversation {
        package var record: ConversationRecord
        package let members: [String]
        package var trusted: Bool

        package init(record: ConversationRecord, members: [String], trusted: Bool) {
            self.record = record
            self.members = members
            self.trusted = trusted
        }
    }

    /// The most conversations `known` holds; it starts over when full.
    package static let knownLimit = 50_000

    /// Stores a batch; returns each message's outcome and the events to publish.
    ///
    /// On PostgreSQL a batch normally takes one round trip: one statement that stores the messages
    /// and their events only if no conversation changed since this writer last wrote it; two when
    /// a conversation must be read first (new to this writer, or last written by another replica,
    /// or a message would be refused). When one changed, a message repeats an earlier one, or the
    /// batch is too large for one statement, the batch is stored again the careful way: one
    /// transaction that locks the conversations first.
    private func write(_ messages: [PendingMessage]) async throws -> ([Result<WriteOutcome, any Error>], [UserEvent]) {
        let now = clock.now()
        if let postgres = store as? any PostgresConnectionStore {
            do {
                if let result = try await writeAtOnce(messages, on: postgres, now: now) {
                    batchesAtOnce += 1
                    return result
                }
            } catch {
                // Nothing was stored unless the commit's answer was lost; then the careful path
                // finds the messages and answers them as repeats.
                logger.warning("storing a message batch in one statement failed; storing it in a transaction", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
        batchesLocked += 1
        for message in messages { known[message.conversationId] = nil }
        return try await writeLocked(messages, now: now)
    }

    /// What a batch comes to, decided from its conversations as read.
    package struct Plan {
        package var outcomes: [Result<WriteOutcome, any Error>] = []
        package var accepted: [MessageRecord] = []
        package var events: [NewUserEvent] = []
        /// Each written conversation's new last sequence number.
        package var lastSeq: [String: Int64] = [:]

        package init(outcomes: [Result<WriteOutcome, any Error>] = [], accepted: [MessageRecord] = [], events: [NewUserEvent] = [], lastSeq: [String: Int64] = [:]) {
            self.outcomes = outcomes
            self.accepted = accepted
            self.events = events
            self.lastSeq = lastSeq
        }
    }

    /// Checks each message on its own against its conversation, its members and the messages
    /// already stored under its id, and numbers the accepted ones.
    package static func plan(_ messages: [PendingMessage], conversations: [String: ConversationRecord], members: [String: [String]],
                     existing stored: [String: MessageRecord], now: Timestamp, limits: MessagingLimits) -> Plan {
        var plan = Plan()
        var existing = stored
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
                    plan.outcomes.append(.success(.duplicate(earlier)))
                    continue
                }
                guard message.header.epoch == conversation.epoch else {
                    throw Problem(status: 409, slug: "stale-epoch", title: "Stale epoch", detail: "The conversation's membership changed: fetch the ops, start a new chain and send again.")
                }
                let expiresAt = try MessageRules.checkExpiry(message.header, conversation: conversation, now: now, limits: limits)
                let seq = (plan.lastSeq[message.conversationId] ?? conversation.lastSeq) + 1
                plan.lastSeq[message.conversationId] = seq
                let record = MessageRecord(
                    conversationId: message.conversationId, id: message.messageId, seq: seq, senderId: message.sender,
                    kind: Int64(MessageHeader.Kind.message.rawValue), refersTo: nil, header: message.headerBytes, ciphertext: message.ciphertext,
                    signature: message.signature, expiresAt: expiresAt, createdAt: now.millis, editedBy: nil, deletedAt: nil)
                existing[key] = record
                plan.accepted.append(record)
                let data = EventData.json(record.view)
                plan.events += present.map { NewUserEvent(userId: $0, type: "message.new", data: data) }
                plan.outcomes.append(.success(.stored(record)))
            } catch {
                plan.outcomes.append(.failure(error))
            }
        }
        return plan
    }

    /// The most events one statement carries (each list is one array parameter; this keeps a
    /// statement's size bounded).
    package static let eventsPerStatement = 4000

    /// PostgreSQL, in prepared statements (`MessageBatchStatements`): when every conversation
    /// of the batch is known and trusted and every message would be accepted, one statement
    /// stores the batch; otherwise the conversations, their members and whether any message id
    /// is taken are read first. The statement updates the conversations only where the sequence
    /// number and epoch are still those expected, and stores the messages and events only if
    /// every conversation was updated. Nil when the careful path must do it (see `write`).
    private func writeAtOnce(_ messages: [PendingMessage], on postgres: any PostgresConnectionStore, now: Timestamp) async throws -> ([Result<WriteOutcome, any Error>], [UserEvent])? {
        let ids = Array(Set(messages.map(\.conversationId))).sorted()
        if ids.allSatisfy({ known[$0]?.trusted == true }) {
            var conversations: [String: ConversationRecord] = [:]
            var members: [String: [String]] = [:]
            for id in ids {
                conversations[id] = known[id]!.record
                members[id] = known[id]!.members
            }
            // A refusal is only ever decided on what was just read.
            let plan = Self.plan(messages, conversations: conversations, members: members, existing: [:], now: now, limits: limits)
            if plan.outcomes.allSatisfy({ if case .success(.stored) = $0 { true } else { false } }), plan.events.count <= Self.eventsPerStatement {
                do {
                    if let result = try await storeAtOnce(plan, expecting: conversations, on: postgres, now: now) {
                        batchesFromMemory += 1
                        return result
                    }
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                    // A message repeats an id already stored: the careful path answers it as such.
                    return nil
                }
                // Another writer (replica) wrote to one of them: read them again.
                for id in ids { known[id]?.trusted = false }
            }
        }

        let read = MessageBatchStatements.Read(conversationIds: ids, messages: messages.map { ($0.conversationId, $0.messageId) })
        let logger = self.logger
        let rows = try await postgres.withConnection { connection in
            try await connection.execute(read, logger: logger).reduce(into: []) { $0.append($1.sql()) }
        }
        var conversations: [String: ConversationRecord] = [:]
        var members: [String: [String]] = [:]
        for row in rows {
            if try row.decode(column: "repeats", as: Bool.self) { return nil }
            let record = try ConversationRepository.decodeConversation(row)
            conversations[record.id] = record
            members[record.id] = try row.decode(column: "member_ids", as: [String].self)
            let before = known[record.id]?.record
            if known.count >= Self.knownLimit { known.removeAll(keepingCapacity: true) }
            known[record.id] = KnownConversation(record: record, members: members[record.id]!,
                                                 trusted: before?.lastSeq == record.lastSeq && before?.epoch == record.epoch)
        }
        let plan = Self.plan(messages, conversations: conversations, members: members, existing: [:], now: now, limits: limits)
        guard !plan.accepted.isEmpty else { return (plan.outcomes, []) }
        guard plan.events.count <= Self.eventsPerStatement else { return nil }
        await afterRead?()
        return try await storeAtOnce(plan, expecting: conversations, on: postgres, now: now)
    }

    /// The one statement that stores a planned batch if every conversation is still as
    /// `expecting` has it; nil (nothing stored) when one is not.
    private func storeAtOnce(_ plan: Plan, expecting conversations: [String: ConversationRecord], on postgres: any PostgresConnectionStore,
                             now: Timestamp) async throws -> ([Result<WriteOutcome, any Error>], [UserEvent])? {
        let written = plan.lastSeq.keys.sorted()
        let write = MessageBatchStatements.Write(
            conversations: written.map { id in
                .init(id: id, readSeq: conversations[id]!.lastSeq, epoch: conversations[id]!.epoch, lastSeq: plan.lastSeq[id]!)
            },
            messages: plan.accepted, events: plan.events, now: now, outbox: UserEventLog.newOutboxId())
        let logger = self.logger
        let counters = try await postgres.withConnection { connection in
            try await connection.execute(write, logger: logger).reduce(into: [(userId: String, lastSeq: Int64)]()) {
                $0.append(try $1.decode((String, Int64).self))
            }
        }
        // No rows: a conversation changed since it was read, and nothing was stored.
        guard !counters.isEmpty else { return nil }
        for id in written { known[id]?.record.lastSeq = plan.lastSeq[id]! }
        return (plan.outcomes, try UserEventLog.numbered(plan.events, lastSeqs: counters, at: now, outbox: write.outbox))
    }

    /// One transaction for the whole batch that locks its conversations first (every engine).
    private func writeLocked(_ messages: [PendingMessage], now: Timestamp) async throws -> ([Result<WriteOutcome, any Error>], [UserEvent]) {
        let limits = self.limits
        let engine = store.engine
        return try await store.write { db in
            let ids = Array(Set(messages.map(\.conversationId))).sorted()
            // Lock the conversations in id order (two writers never wait on each other in a cycle).
            var lockQuery = SQLQueryString("SELECT * FROM conversations WHERE id IN (")
            lockQuery.appendBinds(ids)
            lockQuery += ") ORDER BY id\(unsafeRaw: engine == .postgres ? " FOR UPDATE" : "")"
            var conversations: [String: ConversationRecord] = [:]
            for row in try await db.raw(lockQuery).all() {
                let record = try ConversationRepository.decodeConversation(row)
                conversations[record.id] = record
            }
            var membersQuery = SQLQueryString("SELECT conversation_id, user_id FROM conversation_members WHERE conversation_id IN (")
            membersQuery.appendBinds(ids)
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
            let plan = Self.plan(messages, conversations: conversations, members: members, existing: existing, now: now, limits: limits)
            guard !plan.accepted.isEmpty else { return (plan.outcomes, []) }
            var seqUpdate = SQLQueryString("UPDATE conversations SET updated_at = \(bind: now.millis), last_seq = CASE id")
            for (id, seq) in plan.lastSeq.sorted(by: { $0.key < $1.key }) { seqUpdate += " WHEN \(bind: id) THEN \(bind: seq)" }
            seqUpdate += " END WHERE id IN ("
            seqUpdate.appendBinds(plan.lastSeq.keys.sorted())
            seqUpdate += ")"
            try await db.raw(seqUpdate).run()
            try await MessageRepository.insert(plan.accepted, in: db)
            return (plan.outcomes, try await UserEventLog.append(plan.events, at: now, in: db))
        }
    }
}
