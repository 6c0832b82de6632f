import CircleCore
import CircleStore
import Foundation
import Logging
import SQLKit

/// A conversation as a batch of messages sees it: its row and its members.
package struct BatchConversation: Sendable {
    package var record: ConversationRecord
    package let members: [String]

    package init(record: ConversationRecord, members: [String]) {
        self.record = record
        self.members = members
    }
}

/// A message of a batch by its place: (conversation, message id).
package struct MessageKey: Hashable, Sendable {
    package let conversationId: String
    package let messageId: String

    package init(conversationId: String, messageId: String) {
        self.conversationId = conversationId
        self.messageId = messageId
    }
}

/// What the careful path read under its row locks.
package struct LockedRead: Sendable {
    package let conversations: [String: BatchConversation]
    /// Messages already stored under the batch's ids and under the ids its edits and deletes name.
    package let stored: [MessageKey: MessageRecord]
}

/// What a batch stores: new messages (edits and deletes among them), the marks they put on
/// their originals, each written conversation's new last sequence number, and the outbox entry
/// that lists the messages until they are published.
package struct BatchWrite: Sendable {
    /// A written conversation: the sequence number and epoch the batch was planned against, and
    /// its new last sequence number.
    package struct Conversation: Sendable {
        package let id: String
        package let readSeq: Int64
        package let epoch: [UInt8]
        package let lastSeq: Int64

        package init(id: String, readSeq: Int64, epoch: [UInt8], lastSeq: Int64) {
            self.id = id
            self.readSeq = readSeq
            self.epoch = epoch
            self.lastSeq = lastSeq
        }
    }

    /// An accepted edit or delete marks its original.
    package struct Mark: Sendable {
        package let original: MessageKey
        /// The edit's id; nil for a delete.
        package let editId: String?

        package init(original: MessageKey, editId: String?) {
            self.original = original
            self.editId = editId
        }
    }

    package var conversations: [Conversation] = []
    package var messages: [MessageRecord] = []
    package var marks: [Mark] = []
    package let outbox: String

    package init(outbox: String = MessageOutbox.newId()) {
        self.outbox = outbox
    }

    package var isEmpty: Bool { messages.isEmpty }
}

/// Why a batch was not stored at once.
package enum MessageBatchError: Error {
    /// A message's id was taken in its conversation by the time the statement ran.
    case idTaken
}

/// Stores batches of messages (the messaging writer's repository). Every engine has the careful
/// path; PostgreSQL adds a read and a one-statement write for batches of new messages, prepared
/// once per connection.
package protocol MessageBatchRepository: Sendable {
    /// Whether `read` and `storeAtOnce` are available.
    var storesAtOnce: Bool { get }

    /// The batch's conversations with their members; nil when a message id of the batch is
    /// already taken in its conversation (the careful path answers repeats).
    func read(conversationIds: [String], messages: [MessageKey]) async throws -> [String: BatchConversation]?

    /// Stores `write` in one statement if every written conversation still has the sequence
    /// number and epoch it was planned against; false, with nothing stored, if one has not.
    func storeAtOnce(_ write: BatchWrite, now: Timestamp) async throws -> Bool

    /// One transaction: locks the conversations (in id order), reads them, their members and the
    /// messages stored under `keys`, lets `decide` plan the batch from that, and stores the plan.
    func storeLocked<Outcome: Sendable>(
        conversationIds: [String], keys: [MessageKey], now: Timestamp,
        decide: @escaping @Sendable (LockedRead) -> (BatchWrite, Outcome)
    ) async throws -> Outcome
}

/// The repository for a store: PostgreSQL's fast path when the store lends PostgreSQL
/// connections, the careful path alone otherwise.
package func messageBatches(_ store: any DatabaseStore, logger: Logger) -> any MessageBatchRepository {
    if let postgres = store as? any PostgresConnectionStore { return PostgresMessageBatches(store: postgres, logger: logger) }
    return SQLMessageBatches(store: store)
}

/// The careful path in SQLKit, for both engines.
package struct SQLMessageBatches: MessageBatchRepository {
    let store: any DatabaseStore

    package init(store: any DatabaseStore) {
        self.store = store
    }

    package var storesAtOnce: Bool { false }

    package func read(conversationIds: [String], messages: [MessageKey]) async throws -> [String: BatchConversation]? { nil }

    package func storeAtOnce(_ write: BatchWrite, now: Timestamp) async throws -> Bool { false }

    package func storeLocked<Outcome: Sendable>(
        conversationIds: [String], keys: [MessageKey], now: Timestamp,
        decide: @escaping @Sendable (LockedRead) -> (BatchWrite, Outcome)
    ) async throws -> Outcome {
        let engine = store.engine
        return try await store.write { db in
            let ids = Array(Set(conversationIds)).sorted()
            var lockQuery = SQLQueryString("SELECT * FROM conversations WHERE id IN (")
            lockQuery.appendBinds(ids)
            lockQuery += ") ORDER BY id\(unsafeRaw: engine == .postgres ? " FOR UPDATE" : "")"
            var records: [String: ConversationRecord] = [:]
            for row in try await db.raw(lockQuery).all() {
                let record = try ConversationRepository.decodeConversation(row)
                records[record.id] = record
            }
            var membersQuery = SQLQueryString("SELECT conversation_id, user_id FROM conversation_members WHERE conversation_id IN (")
            membersQuery.appendBinds(ids)
            membersQuery += ")"
            var members: [String: [String]] = [:]
            for row in try await db.raw(membersQuery).all() {
                members[try row.decode(column: "conversation_id", as: String.self), default: []].append(try row.decode(column: "user_id", as: String.self))
            }
            var stored: [MessageKey: MessageRecord] = [:]
            let unique = Array(Set(keys))
            for start in stride(from: 0, to: unique.count, by: 400) {
                var query = SQLQueryString("SELECT * FROM messages WHERE (conversation_id, id) IN (VALUES ")
                for (index, key) in unique[start..<min(start + 400, unique.count)].enumerated() {
                    query += index == 0 ? "(\(bind: key.conversationId), \(bind: key.messageId))" : ", (\(bind: key.conversationId), \(bind: key.messageId))"
                }
                query += ")"
                for row in try await db.raw(query).all() {
                    let record = try MessageRepository.decode(row)
                    stored[MessageKey(conversationId: record.conversationId, messageId: record.id)] = record
                }
            }
            var conversations: [String: BatchConversation] = [:]
            for (id, record) in records { conversations[id] = BatchConversation(record: record, members: members[id] ?? []) }
            let (write, outcome) = decide(LockedRead(conversations: conversations, stored: stored))
            guard !write.isEmpty else { return outcome }
            var seqUpdate = SQLQueryString("UPDATE conversations SET updated_at = \(bind: now.millis), last_seq = CASE id")
            for conversation in write.conversations { seqUpdate += " WHEN \(bind: conversation.id) THEN \(bind: conversation.lastSeq)" }
            seqUpdate += " END WHERE id IN ("
            seqUpdate.appendBinds(write.conversations.map(\.id))
            seqUpdate += ")"
            try await db.raw(seqUpdate).run()
            try await MessageRepository.insert(write.messages, in: db)
            for mark in write.marks {
                if let editId = mark.editId {
                    try await MessageRepository.markEdited(mark.original.conversationId, id: mark.original.messageId, by: editId, in: db)
                } else {
                    try await MessageRepository.markDeleted(mark.original.conversationId, id: mark.original.messageId, at: now, in: db)
                }
            }
            try await MessageOutbox.insert(id: write.outbox, listing: write.messages, at: now, in: db)
            return outcome
        }
    }
}
