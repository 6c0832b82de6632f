import CircleCore
import CircleStore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The two statements of a message batch on PostgreSQL (`PostgresMessageBatches`), each with
/// one fixed text whatever the batch holds: lists travel as array parameters, so PostgreSQL parses
/// and plans each once per connection (a prepared statement). Planned once per batch, planning
/// took more of the database's time than running them (pg_stat_statements, BENCHMARKS.md).
package enum MessageBatchStatements {
    /// The batch's conversations as read: each with its member ids, and (the same on every row)
    /// whether any of the batch's messages repeats an id already taken in its conversation.
    /// The repeats are looked up pair by pair in the primary key, once for the batch: checking
    /// every id against every conversation of the batch made PostgreSQL walk each conversation's
    /// messages (12 ms for 20 conversations of a few hundred messages each, growing with them).
    package struct Read: PostgresPreparedStatement {
        package static let name = "circle_message_batch_read"
        package static let sql = """
            SELECT c.id, c.kind, c.head_n, c.epoch, c.disappear_seconds, c.read_receipts, c.retention_days, c.last_seq, c.updated_at,
            ARRAY(SELECT m.user_id FROM conversation_members m WHERE m.conversation_id = c.id) AS member_ids,
            EXISTS(SELECT 1 FROM unnest($2::text[], $3::text[]) AS p (conversation_id, id)
                   WHERE EXISTS(SELECT 1 FROM messages x WHERE x.conversation_id = p.conversation_id AND x.id = p.id)) AS repeats
            FROM conversations c WHERE c.id = ANY($1::text[])
            """
        package typealias Row = PostgresRow

        package let conversationIds: [String]
        /// Each message of the batch as (conversation id, message id).
        package let messages: [(conversationId: String, messageId: String)]

        package init(conversationIds: [String], messages: [(conversationId: String, messageId: String)]) {
            self.conversationIds = conversationIds
            self.messages = messages
        }

        package func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(conversationIds)
            bindings.append(messages.map(\.conversationId))
            bindings.append(messages.map(\.messageId))
            return bindings
        }

        package func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// Stores a batch only if every conversation still has the sequence number and epoch it was
    /// planned against: takes the conversations' row locks (in id order), checks them, and then,
    /// only if all match, moves their sequence numbers and stores the messages and their outbox
    /// entry (all parts of one statement see one snapshot; it is atomic). Returns whether it did.
    package struct Write: PostgresPreparedStatement {
        package static let name = "circle_message_batch_write_v2"
        package static let sql = """
            WITH expected AS (
              SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::int8[]) AS e (id, read_seq, epoch, last_seq)
            ), locked AS (
              SELECT c.id, c.last_seq, c.epoch FROM conversations c WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR UPDATE
            ), unchanged AS (
              SELECT count(*) = cardinality($1::text[]) AS ok FROM locked l JOIN expected e
                ON l.id = e.id AND l.last_seq = e.read_seq AND l.epoch = e.epoch
            ), numbered AS (
              UPDATE conversations c SET updated_at = $5::int8, last_seq = e.last_seq FROM expected e
              WHERE c.id = e.id AND (SELECT ok FROM unchanged) RETURNING c.id
            ), stored AS (
              INSERT INTO messages (conversation_id, id, seq, sender_id, kind, header, ciphertext, signature, expires_at, created_at)
              SELECT m.conversation_id, m.id, m.seq, m.sender_id, m.kind, m.header, m.ciphertext, m.signature, m.expires_at, $5::int8
              FROM unnest($6::text[], $7::text[], $8::int8[], $9::text[], $10::int8[], $11::bytea[], $12::bytea[], $13::bytea[], $14::int8[])
                AS m (conversation_id, id, seq, sender_id, kind, header, ciphertext, signature, expires_at)
              WHERE (SELECT ok FROM unchanged)
            ), outboxed AS (
              INSERT INTO message_outbox (id, created_at, ranges) SELECT $15::text, $5::int8, $16::text WHERE (SELECT ok FROM unchanged)
            )
            SELECT ok FROM unchanged
            """
        package typealias Row = Bool

        package let write: BatchWrite
        package let now: Timestamp

        package init(write: BatchWrite, now: Timestamp) {
            self.write = write
            self.now = now
        }

        package func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 16)
            let conversations = write.conversations
            let messages = write.messages
            bindings.append(conversations.map(\.id))
            bindings.append(conversations.map(\.readSeq))
            bindings.append(conversations.map { ByteBuffer(bytes: $0.epoch) })
            bindings.append(conversations.map(\.lastSeq))
            bindings.append(now.millis)
            bindings.append(messages.map(\.conversationId))
            bindings.append(messages.map(\.id))
            bindings.append(messages.map(\.seq))
            bindings.append(messages.map(\.senderId))
            bindings.append(messages.map(\.kind))
            bindings.append(messages.map { ByteBuffer(bytes: $0.header) })
            bindings.append(messages.map { ByteBuffer(bytes: $0.ciphertext) })
            bindings.append(messages.map { ByteBuffer(bytes: $0.signature) })
            bindings.append(messages.map(\.expiresAt))
            bindings.append(write.outbox)
            bindings.append(MessageOutbox.ranges(of: messages))
            return bindings
        }

        package func decodeRow(_ row: PostgresRow) throws -> Bool { try row.decode(Bool.self) }
    }
}

/// PostgreSQL's fast path beside the careful one.
package struct PostgresMessageBatches: MessageBatchRepository {
    let store: any PostgresConnectionStore
    let careful: SQLMessageBatches
    let logger: Logger

    package init(store: any PostgresConnectionStore, logger: Logger) {
        self.store = store
        self.careful = SQLMessageBatches(store: store)
        self.logger = logger
    }

    package var storesAtOnce: Bool { true }

    package func read(conversationIds: [String], messages: [MessageKey]) async throws -> [String: BatchConversation]? {
        let read = MessageBatchStatements.Read(conversationIds: conversationIds, messages: messages.map { ($0.conversationId, $0.messageId) })
        let logger = self.logger
        let rows = try await store.withConnection { connection in
            try await connection.execute(read, logger: logger).reduce(into: []) { $0.append($1.sql()) }
        }
        var conversations: [String: BatchConversation] = [:]
        for row in rows {
            if try row.decode(column: "repeats", as: Bool.self) { return nil }
            let record = try ConversationRepository.decodeConversation(row)
            conversations[record.id] = BatchConversation(record: record, members: try row.decode(column: "member_ids", as: [String].self))
        }
        return conversations
    }

    package func storeAtOnce(_ write: BatchWrite, now: Timestamp) async throws -> Bool {
        let statement = MessageBatchStatements.Write(write: write, now: now)
        let logger = self.logger
        do {
            return try await store.withConnection { connection in
                try await connection.execute(statement, logger: logger).reduce(into: false) { $0 = $0 || $1 }
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw MessageBatchError.idTaken
        }
    }

    package func storeLocked<Outcome: Sendable>(
        conversationIds: [String], keys: [MessageKey], now: Timestamp,
        decide: @escaping @Sendable (LockedRead) -> (BatchWrite, Outcome)
    ) async throws -> Outcome {
        try await careful.storeLocked(conversationIds: conversationIds, keys: keys, now: now, decide: decide)
    }
}
