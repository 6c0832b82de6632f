import CircleCore
import CircleProtocol
import CircleStore
import Foundation
import SQLKit

/// A message row as the service keeps it.
package struct MessageRecord: Sendable, Equatable {
    package let conversationId: String
    package let id: String
    package let seq: Int64
    package let senderId: String
    package let kind: Int64
    package let refersTo: String?
    package let header: [UInt8]
    package let ciphertext: [UInt8]
    package let signature: [UInt8]
    package let expiresAt: Int64
    package let createdAt: Int64
    package let editedBy: String?
    package let deletedAt: Int64?

    package init(conversationId: String, id: String, seq: Int64, senderId: String, kind: Int64, refersTo: String?, header: [UInt8], ciphertext: [UInt8], signature: [UInt8], expiresAt: Int64, createdAt: Int64, editedBy: String?, deletedAt: Int64?) {
        self.conversationId = conversationId
        self.id = id
        self.seq = seq
        self.senderId = senderId
        self.kind = kind
        self.refersTo = refersTo
        self.header = header
        self.ciphertext = ciphertext
        self.signature = signature
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.editedBy = editedBy
        self.deletedAt = deletedAt
    }

    package var view: MessageView {
        MessageView(conversationId: conversationId, id: id, seq: seq, sender: senderId, header: WireBytes.encode(header),
                    ciphertext: WireBytes.encode(ciphertext), signature: WireBytes.encode(signature), expiresAt: expiresAt,
                    createdAt: createdAt, editedBy: editedBy, deleted: deletedAt != nil)
    }
}

/// A key envelope row.
package struct EnvelopeRecord: Sendable, Equatable {
    /// When it was stored (orders pages).
    package let createdAt: Int64
    package let conversationId: String
    package let epoch: String
    package let senderId: String
    package let deviceId: String
    package let generation: Int64
    package let recipientId: String
    package let enc: [UInt8]
    package let ciphertext: [UInt8]
    package let signature: [UInt8]

    package init(conversationId: String, epoch: String, senderId: String, deviceId: String, generation: Int64, recipientId: String, enc: [UInt8], ciphertext: [UInt8], signature: [UInt8],
                 createdAt: Int64 = 0) {
        self.createdAt = createdAt
        self.conversationId = conversationId
        self.epoch = epoch
        self.senderId = senderId
        self.deviceId = deviceId
        self.generation = generation
        self.recipientId = recipientId
        self.enc = enc
        self.ciphertext = ciphertext
        self.signature = signature
    }

    /// The same envelope (where it was stored aside).
    package static func == (a: EnvelopeRecord, b: EnvelopeRecord) -> Bool {
        a.conversationId == b.conversationId && a.epoch == b.epoch && a.senderId == b.senderId && a.deviceId == b.deviceId
            && a.generation == b.generation && a.recipientId == b.recipientId && a.enc == b.enc && a.ciphertext == b.ciphertext && a.signature == b.signature
    }

    package var reference: EnvelopeReference {
        EnvelopeReference(conversationId: conversationId, epoch: epoch, sender: senderId, deviceId: deviceId, generation: UInt32(clamping: generation))
    }

    package var view: EnvelopeView {
        EnvelopeView(conversationId: conversationId, epoch: epoch, sender: senderId, deviceId: deviceId, generation: UInt32(clamping: generation),
                     recipient: recipientId, enc: WireBytes.encode(enc), ciphertext: WireBytes.encode(ciphertext), signature: WireBytes.encode(signature))
    }
}

/// SQL for `messages` and `key_envelopes`. Messaging is their only writer.
package enum MessageRepository {
    package static func decode(_ row: any SQLRow) throws -> MessageRecord {
        MessageRecord(
            conversationId: try row.decode(column: "conversation_id", as: String.self),
            id: try row.decode(column: "id", as: String.self),
            seq: try row.decode(column: "seq", as: Int64.self),
            senderId: try row.decode(column: "sender_id", as: String.self),
            kind: try row.decode(column: "kind", as: Int64.self),
            refersTo: try row.decode(column: "refers_to", as: String?.self),
            header: Array(try row.decode(column: "header", as: Data.self)),
            ciphertext: Array(try row.decode(column: "ciphertext", as: Data.self)),
            signature: Array(try row.decode(column: "signature", as: Data.self)),
            expiresAt: try row.decode(column: "expires_at", as: Int64.self),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            editedBy: try row.decode(column: "edited_by", as: String?.self),
            deletedAt: try row.decode(column: "deleted_at", as: Int64?.self)
        )
    }

    /// The message, expired or not (callers decide what an expired one means).
    package static func message(_ conversationId: String, id: String, in db: any SQLDatabase) async throws -> MessageRecord? {
        try await db.raw("SELECT * FROM messages WHERE conversation_id = \(bind: conversationId) AND id = \(bind: id)").first().map(decode)
    }

    package static func insert(_ message: MessageRecord, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO messages (conversation_id, id, seq, sender_id, kind, refers_to, header, ciphertext, signature, expires_at, created_at)
            VALUES (\(bind: message.conversationId), \(bind: message.id), \(bind: message.seq), \(bind: message.senderId), \(bind: message.kind),
                    \(bind: message.refersTo), \(bind: Data(message.header)), \(bind: Data(message.ciphertext)), \(bind: Data(message.signature)),
                    \(bind: message.expiresAt), \(bind: message.createdAt))
            """).run()
    }

    /// Inserts several messages in one statement.
    package static func insert(_ messages: [MessageRecord], in db: any SQLDatabase) async throws {
        guard !messages.isEmpty else { return }
        var query = SQLQueryString("INSERT INTO messages (conversation_id, id, seq, sender_id, kind, refers_to, header, ciphertext, signature, expires_at, created_at) VALUES ")
        for (index, message) in messages.enumerated() {
            if index > 0 { query += ", " }
            query += """
                (\(bind: message.conversationId), \(bind: message.id), \(bind: message.seq), \(bind: message.senderId), \(bind: message.kind),
                 \(bind: message.refersTo), \(bind: Data(message.header)), \(bind: Data(message.ciphertext)), \(bind: Data(message.signature)),
                 \(bind: message.expiresAt), \(bind: message.createdAt))
                """
        }
        try await db.raw(query).run()
    }

    /// Marks the original of an edit.
    package static func markEdited(_ conversationId: String, id: String, by editId: String, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE messages SET edited_by = \(bind: editId) WHERE conversation_id = \(bind: conversationId) AND id = \(bind: id)").run()
    }

    /// Deletes for everyone: the original's ciphertext goes at once, its header stays as a marker.
    package static func markDeleted(_ conversationId: String, id: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE messages SET deleted_at = \(bind: now.millis), ciphertext = \(bind: Data())
            WHERE conversation_id = \(bind: conversationId) AND id = \(bind: id)
            """).run()
        try await db.raw("""
            UPDATE messages SET ciphertext = \(bind: Data()), deleted_at = \(bind: now.millis)
            WHERE conversation_id = \(bind: conversationId) AND refers_to = \(bind: id) AND kind = 1
            """).run()
    }

    /// Messages after `after` that have not expired, oldest first.
    package static func page(_ conversationId: String, after: Int64, limit: Int, at now: Timestamp, in db: any SQLDatabase) async throws -> [MessageRecord] {
        try await db.raw("""
            SELECT * FROM messages WHERE conversation_id = \(bind: conversationId) AND seq > \(bind: after)
              AND (expires_at = 0 OR expires_at > \(bind: now.millis)) AND created_at >= \(retained(conversationId, at: now))
            ORDER BY seq LIMIT \(bind: limit)
            """).all().map(decode)
    }

    /// The oldest receipt time the conversation's retention still keeps (0 without one): a
    /// scalar subquery, so a message past it is never served even before the sweep deletes it.
    static func retained(_ conversationId: String, at now: Timestamp) -> SQLQueryString {
        """
        COALESCE((SELECT CASE WHEN r.retention_days > 0 THEN \(bind: now.millis) - r.retention_days * \(bind: Self.dayMillis) ELSE 0 END
                  FROM conversations r WHERE r.id = \(bind: conversationId)), 0)
        """
    }

    static let dayMillis: Int64 = 86_400_000

    /// The messages `first...last` of a conversation that have not expired (for the relay).
    package static func range(_ conversationId: String, first: Int64, last: Int64, at now: Timestamp, in db: any SQLDatabase) async throws -> [MessageRecord] {
        try await db.raw("""
            SELECT * FROM messages WHERE conversation_id = \(bind: conversationId) AND seq >= \(bind: first) AND seq <= \(bind: last)
              AND (expires_at = 0 OR expires_at > \(bind: now.millis)) AND created_at >= \(retained(conversationId, at: now))
            ORDER BY seq
            """).all().map(decode)
    }

    // MARK: Expiry

    /// Deletes at most `limit` expired messages; several cleanup replicas can run this at once
    /// (PostgreSQL claims rows with `FOR UPDATE SKIP LOCKED`). Returns how many went.
    package static func deleteExpired(before now: Timestamp, limit: Int, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> Int {
        let lock = engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        return try await db.raw("""
            DELETE FROM messages WHERE (conversation_id, id) IN (
                SELECT conversation_id, id FROM messages WHERE expires_at > 0 AND expires_at <= \(bind: now.millis)
                ORDER BY expires_at LIMIT \(bind: limit)\(unsafeRaw: lock)
            ) RETURNING id
            """).all().count
    }

    /// The conversations with a retention, and the oldest receipt time each keeps.
    package static func retentions(at now: Timestamp, in db: any SQLDatabase) async throws -> [(conversationId: String, keepsFrom: Int64)] {
        try await db.raw("SELECT id, retention_days FROM conversations WHERE retention_days > 0 ORDER BY id").all().map {
            (try $0.decode(column: "id", as: String.self), now.millis - (try $0.decode(column: "retention_days", as: Int64.self)) * dayMillis)
        }
    }

    /// The sequence number of the conversation's oldest message when it was received before
    /// `keepsFrom` (one probe of the sequence index; receipt times grow with the sequence), else nil.
    package static func oldestUnretained(_ conversationId: String, before keepsFrom: Int64, in db: any SQLDatabase) async throws -> Int64? {
        guard let oldest = try await db.raw("""
            SELECT seq, created_at FROM messages WHERE conversation_id = \(bind: conversationId) ORDER BY seq LIMIT 1
            """).first(), try oldest.decode(column: "created_at", as: Int64.self) < keepsFrom else { return nil }
        return try oldest.decode(column: "seq", as: Int64.self)
    }

    /// Deletes the conversation's messages received before `keepsFrom` among the `limit`
    /// sequence numbers from `from` (the oldest's, so at least that one goes, whatever gaps
    /// expiry left); returns how many. Replicas on PostgreSQL take disjoint rows.
    package static func deleteUnretained(_ conversationId: String, from: Int64, before keepsFrom: Int64, limit: Int, engine: DatabaseEngine,
                                         in db: any SQLDatabase) async throws -> Int {
        let lock = engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        return try await db.raw("""
            DELETE FROM messages WHERE (conversation_id, id) IN (
                SELECT conversation_id, id FROM messages WHERE conversation_id = \(bind: conversationId)
                  AND seq >= \(bind: from) AND seq < \(bind: from + Int64(limit)) AND created_at < \(bind: keepsFrom)
                ORDER BY seq\(unsafeRaw: lock)
            ) RETURNING id
            """).all().count
    }

    // MARK: Envelopes

    package static func decodeEnvelope(_ row: any SQLRow) throws -> EnvelopeRecord {
        EnvelopeRecord(
            conversationId: try row.decode(column: "conversation_id", as: String.self),
            epoch: try row.decode(column: "epoch", as: String.self),
            senderId: try row.decode(column: "sender_id", as: String.self),
            deviceId: try row.decode(column: "device_id", as: String.self),
            generation: try row.decode(column: "generation", as: Int64.self),
            recipientId: try row.decode(column: "recipient_id", as: String.self),
            enc: Array(try row.decode(column: "enc", as: Data.self)),
            ciphertext: Array(try row.decode(column: "ciphertext", as: Data.self)),
            signature: Array(try row.decode(column: "signature", as: Data.self)),
            createdAt: try row.decode(column: "created_at", as: Int64.self)
        )
    }

    package static func envelope(like e: EnvelopeRecord, in db: any SQLDatabase) async throws -> EnvelopeRecord? {
        try await db.raw("""
            SELECT * FROM key_envelopes WHERE conversation_id = \(bind: e.conversationId) AND epoch = \(bind: e.epoch)
              AND sender_id = \(bind: e.senderId) AND device_id = \(bind: e.deviceId) AND generation = \(bind: e.generation)
              AND recipient_id = \(bind: e.recipientId)
            """).first().map(decodeEnvelope)
    }

    package static func insertEnvelope(_ e: EnvelopeRecord, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO key_envelopes (conversation_id, epoch, sender_id, device_id, generation, recipient_id, enc, ciphertext, signature, created_at)
            VALUES (\(bind: e.conversationId), \(bind: e.epoch), \(bind: e.senderId), \(bind: e.deviceId), \(bind: e.generation),
                    \(bind: e.recipientId), \(bind: Data(e.enc)), \(bind: Data(e.ciphertext)), \(bind: Data(e.signature)), \(bind: now.millis))
            """).run()
    }

    /// The envelopes addressed to `recipient` in a conversation, optionally of one epoch or sender,
    /// in a stable order, after `cursor` (exclusive), at most `limit`.
    package static func envelopes(_ conversationId: String, recipient: String, epoch: String?, sender: String?, after cursor: EnvelopeCursor?,
                                  limit: Int, in db: any SQLDatabase) async throws -> [EnvelopeRecord] {
        var query = SQLQueryString("SELECT * FROM key_envelopes WHERE conversation_id = \(bind: conversationId) AND recipient_id = \(bind: recipient)")
        if let epoch { query += " AND epoch = \(bind: epoch)" }
        if let sender { query += " AND sender_id = \(bind: sender)" }
        if let cursor {
            query += """
                 AND (created_at, epoch, sender_id, device_id, generation) > (\(bind: cursor.createdAt), \(bind: cursor.epoch), \(bind: cursor.sender), \(bind: cursor.deviceId), \(bind: cursor.generation))
                """
        }
        query += " ORDER BY created_at, epoch, sender_id, device_id, generation LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(decodeEnvelope)
    }
}

/// Where a page of envelopes ended: the last envelope's place in their order, as an opaque
/// text (`next` of one page, `after` of the next).
package struct EnvelopeCursor: Sendable, Equatable {
    package let createdAt: Int64
    package let epoch: String
    package let sender: String
    package let deviceId: String
    package let generation: Int64

    package init(_ envelope: EnvelopeRecord) {
        createdAt = envelope.createdAt
        epoch = envelope.epoch
        sender = envelope.senderId
        deviceId = envelope.deviceId
        generation = envelope.generation
    }

    /// Reads `text`; nil unless it is a cursor this server made (base64url of its fields joined
    /// by spaces: none of them holds one).
    package init?(_ text: String) {
        guard let data = Base64URL.decode(text), let joined = String(data: data, encoding: .utf8) else { return nil }
        let parts = joined.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, let createdAt = Int64(parts[0]), let generation = Int64(parts[4]),
              parts[1].count == 43, UserIdText.isValid(parts[2]), parts[3].count == 22 else { return nil }
        self.createdAt = createdAt
        epoch = parts[1]
        sender = parts[2]
        deviceId = parts[3]
        self.generation = generation
    }

    package var text: String { Base64URL.encode(Array("\(createdAt) \(epoch) \(sender) \(deviceId) \(generation)".utf8)) }
}
