import SQLKit

/// What the outbox tables (`event_outbox`, `message_outbox`) share: rows listing committed
/// changes that may not have been published yet, deleted once they were.
public enum Outbox {
    /// The outbox tables; nothing else is ever named in a statement here.
    static let tables: Set<String> = ["event_outbox", "message_outbox"]

    /// Deletes entries by id, 500 per statement.
    public static func remove(_ ids: [String], from table: String, in db: any SQLDatabase) async throws {
        precondition(tables.contains(table), "not an outbox table")
        for start in stride(from: 0, to: ids.count, by: 500) {
            var query = SQLQueryString("DELETE FROM \(unsafeRaw: table) WHERE id IN (")
            query.appendBinds(ids[start..<min(start + 500, ids.count)])
            query += ")"
            try await db.raw(query).run()
        }
    }
}
