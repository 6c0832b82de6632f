import CircleCore
import CircleStore
import SQLKit

/// `message_outbox`: committed batches of messages that may not have been published yet, each
/// as its conversations' ranges of sequence numbers (`conversation:first:last` joined by commas).
/// The writer deletes an entry once its messages went out; the messaging relay publishes what
/// entries older than a few seconds list (a crash between commit and publish must not strand a
/// live client).
package enum MessageOutbox {
    /// A conversation's messages `first...last` of one batch.
    package struct Range: Sendable, Equatable {
        package let conversationId: String
        package let first: Int64
        package let last: Int64

        package init(conversationId: String, first: Int64, last: Int64) {
            self.conversationId = conversationId
            self.first = first
            self.last = last
        }
    }

    /// One entry.
    package struct Entry: Sendable, Equatable {
        package let id: String
        package let ranges: [Range]
    }

    /// A new entry id (128 random bits).
    package static func newId() -> String { Base64URL.encode(SecureRandom.bytes(16)) }

    /// The stored text for a batch's messages.
    package static func ranges(of messages: [MessageRecord]) -> String {
        var bounds: [String: (first: Int64, last: Int64)] = [:]
        for message in messages {
            let known = bounds[message.conversationId]
            bounds[message.conversationId] = (min(known?.first ?? message.seq, message.seq), max(known?.last ?? message.seq, message.seq))
        }
        return bounds.keys.sorted().map { "\($0):\(bounds[$0]!.first):\(bounds[$0]!.last)" }.joined(separator: ",")
    }

    /// Reads stored text; nil when it is malformed (conversation ids are base64url: no ':' or ',').
    package static func parse(_ text: String) -> [Range]? {
        var ranges: [Range] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: ":")
            guard parts.count == 3, let first = Int64(parts[1]), let last = Int64(parts[2]), first >= 1, first <= last else { return nil }
            ranges.append(Range(conversationId: String(parts[0]), first: first, last: last))
        }
        return ranges.isEmpty ? nil : ranges
    }

    package static func insert(id: String, listing messages: [MessageRecord], at now: Timestamp, in db: any SQLDatabase) async throws {
        guard !messages.isEmpty else { return }
        try await db.raw("""
            INSERT INTO message_outbox (id, created_at, ranges) VALUES (\(bind: id), \(bind: now.millis), \(bind: ranges(of: messages)))
            """).run()
    }

    /// Entries written before `before`, oldest first, at most `limit`; with `lock` (PostgreSQL,
    /// inside a transaction) claimed with `FOR UPDATE SKIP LOCKED`, so relays take different ones.
    package static func pending(before: Timestamp, limit: Int, lock: Bool, in db: any SQLDatabase) async throws -> [Entry] {
        try await db.raw("""
            SELECT id, ranges FROM message_outbox WHERE created_at < \(bind: before.millis)
            ORDER BY created_at, id LIMIT \(bind: limit)\(unsafeRaw: lock ? " FOR UPDATE SKIP LOCKED" : "")
            """).all().map { row in
            let id = try row.decode(column: "id", as: String.self)
            guard let ranges = parse(try row.decode(column: "ranges", as: String.self)) else { throw StoreError.corrupt("message outbox entry \(id) cannot be read") }
            return Entry(id: id, ranges: ranges)
        }
    }

    package static func remove(_ ids: [String], in db: any SQLDatabase) async throws {
        try await Outbox.remove(ids, from: "message_outbox", in: db)
    }
}
