import CircleCore
import CircleStore
import Foundation
import NIOCore
import PostgresNIO

/// The two statements of a message batch on PostgreSQL (`MessageWriter.writeAtOnce`), each with
/// one fixed text whatever the batch holds: lists travel as array parameters. PostgreSQL parses
/// and plans each once per connection (a prepared statement) instead of once per batch; before,
/// planning took more of the database's time than running them (pg_stat_statements, BENCHMARKS.md).
package enum MessageBatchStatements {
    /// The batch's conversations as read: each with its member ids, and (the same on every row)
    /// whether any of the batch's messages repeats an id already taken in its conversation.
    /// The repeats are looked up pair by pair in the primary key, once for the batch: checking
    /// every id against every conversation of the batch made PostgreSQL walk each conversation's
    /// messages (12 ms for 20 conversations of a few hundred messages each, growing with them).
    package struct Read: PostgresPreparedStatement {
        package static let name = "circle_message_batch_read"
        package static let sql = """
            SELECT c.id, c.kind, c.head_n, c.epoch, c.disappear_seconds, c.read_receipts, c.last_seq, c.updated_at,
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

    /// Updates each conversation only where its sequence number and epoch are still those read,
    /// and stores the messages, the event counters and the events only if every conversation was
    /// updated (all parts see one snapshot; the statement is atomic), with the events' outbox
    /// entry. Returns each member's new event counter, or no rows when a conversation changed.
    package struct Write: PostgresPreparedStatement {
        package static let name = "circle_message_batch_write"
        package static let sql = """
            WITH expected AS (
              SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::int8[]) AS e (id, read_seq, epoch, last_seq)
            ), locked AS (
              SELECT c.id FROM conversations c WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR UPDATE
            ), numbered AS (
              UPDATE conversations c SET updated_at = $5::int8, last_seq = e.last_seq FROM expected e, locked l
              WHERE c.id = e.id AND l.id = e.id AND c.last_seq = e.read_seq AND c.epoch = e.epoch RETURNING c.id
            ), unchanged AS (
              SELECT count(*) = cardinality($1::text[]) AS ok FROM numbered
            ), stored AS (
              INSERT INTO messages (conversation_id, id, seq, sender_id, kind, header, ciphertext, signature, expires_at, created_at)
              SELECT m.conversation_id, m.id, m.seq, m.sender_id, m.kind, m.header, m.ciphertext, m.signature, m.expires_at, $5::int8
              FROM unnest($6::text[], $7::text[], $8::int8[], $9::text[], $10::int8[], $11::bytea[], $12::bytea[], $13::bytea[], $14::int8[])
                AS m (conversation_id, id, seq, sender_id, kind, header, ciphertext, signature, expires_at)
              WHERE (SELECT ok FROM unchanged)
            ), \(UserEventLog.appendingFromArrays(userIds: 15, createdAt: 5, when: "(SELECT ok FROM unchanged)"))
            """
        package typealias Row = PostgresRow

        package struct Expected {
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

        package let conversations: [Expected]
        package let messages: [MessageRecord]
        package let events: [NewUserEvent]
        package let now: Timestamp
        /// The id of the events' outbox entry.
        package let outbox: String

        package init(conversations: [Expected], messages: [MessageRecord], events: [NewUserEvent], now: Timestamp, outbox: String) {
            self.conversations = conversations
            self.messages = messages
            self.events = events
            self.now = now
            self.outbox = outbox
        }

        package func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 14 + UserEventLog.arrayParameterCount)
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
            UserEventLog.appendArrayBindings(events, outbox: outbox, to: &bindings)
            return bindings
        }

        package func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }
}
