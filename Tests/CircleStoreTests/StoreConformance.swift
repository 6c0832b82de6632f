import CircleCore
import CircleStore
import CircleTestSupport
import Foundation
import Logging
import SQLKit
import Testing

/// Every repository test, written once and run on both engines (see the two suites below).
enum StoreConformance {
    typealias Case = @Sendable (any DatabaseStore) async throws -> Void

    static let cases: [String: Case] = [
        "migrations apply once and record every step": migrationsApplyOnce,
        "a schema newer than this build is refused": newerSchemaRefused,
        "an unmigrated schema is refused where an exact match is required": exactMatchRequired,
        "a recorded step with another name is refused": renamedStepRefused,
        "the server id is created once and stays": serverIDStable,
        "events get per-user sequence numbers in order": eventsNumberedPerUser,
        "a rolled back transaction leaves no event and no gap": rollbackLeavesNothing,
        "concurrent appends to one user never share or skip a number": concurrentAppends,
        "reading since N pages through the log in order": readSincePages,
        "a since older than the retention or from the future asks for a resync": resyncWhenPruned,
        "each append is listed in the outbox until its entry is removed": outboxUntilPublished,
        "the outbox step turns events never marked published into entries": outboxMigration,
    ]

    static var names: [String] { cases.keys.sorted() }

    static func run(_ name: String, engine: DatabaseEngine) async throws {
        let store = try await TestDatabases.open(engine, suite: name)
        try await Migrator(logger: TestServers.quietLogger).migrate(store.store)
        do {
            try await cases[name]!(store.store)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    static let migrator = Migrator(logger: TestServers.quietLogger)

    static func migrationsApplyOnce(_ store: any DatabaseStore) async throws {
        #expect(try await migrator.currentVersion(of: store) == Migrations.latestVersion)
        #expect(try await migrator.migrate(store).isEmpty)
        let rows = try await store.read { db in try await db.raw("SELECT version, name FROM schema_migrations ORDER BY version").all() }
        #expect(try rows.map { try $0.decode(column: "name", as: String.self) } == Migrations.all.map(\.name))
        try await migrator.checkExact(store)
    }

    static func newerSchemaRefused(_ store: any DatabaseStore) async throws {
        let future = Migrations.latestVersion + 1
        try await store.write { db in
            try await db.raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(bind: future), 'from-the-future', 0)").run()
        }
        await #expect(throws: StoreError.schemaNewer(found: future, known: Migrations.latestVersion)) { try await migrator.migrate(store) }
        await #expect(throws: StoreError.schemaNewer(found: future, known: Migrations.latestVersion)) { try await migrator.checkExact(store) }
        await #expect(throws: StoreError.schemaNewer(found: future, known: Migrations.latestVersion)) { try await migrator.checkNotNewer(store) }
    }

    static func exactMatchRequired(_ store: any DatabaseStore) async throws {
        let older = Migrator(migrations: Array(Migrations.all.dropLast()) , logger: TestServers.quietLogger)
        // A build that knows fewer steps sees a newer schema; one that knows more sees an older one.
        await #expect(throws: StoreError.schemaNewer(found: Migrations.latestVersion, known: Migrations.latestVersion - 1)) { try await older.checkExact(store) }
        let extra = Migration(version: Migrations.latestVersion + 1, name: "extra", owner: "test") { _ in ["CREATE TABLE extra_table (id INTEGER)"] }
        let newer = Migrator(migrations: Migrations.all + [extra], logger: TestServers.quietLogger)
        await #expect(throws: StoreError.schemaOlder(found: Migrations.latestVersion, expected: Migrations.latestVersion + 1)) { try await newer.checkExact(store) }
        #expect(try await newer.migrate(store) == [Migrations.latestVersion + 1])
        try await newer.checkExact(store)
    }

    static func renamedStepRefused(_ store: any DatabaseStore) async throws {
        try await store.write { db in try await db.raw("UPDATE schema_migrations SET name = 'renamed' WHERE version = 1").run() }
        await #expect(throws: StoreError.schemaMismatch(version: 1, found: "renamed", expected: Migrations.all[0].name)) { try await migrator.checkExact(store) }
    }

    static func serverIDStable(_ store: any DatabaseStore) async throws {
        let first = try await ServerIdentity.load(from: store)
        #expect(first.count == 32 && first.allSatisfy(\.isHexDigit))
        try await migrator.migrate(store)
        #expect(try await ServerIdentity.load(from: store) == first)
    }

    static func eventsNumberedPerUser(_ store: any DatabaseStore) async throws {
        let now = Timestamp(millis: 1_000)
        let first = try await store.write { db in
            try await UserEventLog.append([
                NewUserEvent(userId: "bob", type: .sessionCreated, data: "{}"),
                NewUserEvent(userId: "alice", type: .sessionRevoked, data: "{\"x\":1}"),
                NewUserEvent(userId: "bob", type: .conversationRead, data: "[]"),
            ], at: now, in: db)
        }
        #expect(first.map(\.seq) == [1, 1, 2])
        #expect(first.map(\.userId) == ["bob", "alice", "bob"])
        let second = try await store.write { db in
            try await UserEventLog.append([NewUserEvent(userId: "bob", type: .conversationOp, data: "null")], at: now, in: db)
        }
        #expect(second.map(\.seq) == [3])
        let page = try await store.read { db in try await UserEventLog.events(for: "bob", since: 0, limit: 10, in: db) }
        #expect(page == .events([
            UserEvent(userId: "bob", seq: 1, type: "session.created", data: "{}", createdAt: now),
            UserEvent(userId: "bob", seq: 2, type: "conversation.read", data: "[]", createdAt: now),
            UserEvent(userId: "bob", seq: 3, type: "conversation.op", data: "null", createdAt: now),
        ], more: false))
    }

    struct Boom: Error {}

    static func rollbackLeavesNothing(_ store: any DatabaseStore) async throws {
        await #expect(throws: Boom.self) {
            try await store.write { db in
                _ = try await UserEventLog.append([NewUserEvent(userId: "carol", type: .sessionCreated, data: "{}")], at: .now(), in: db)
                throw Boom()
            }
        }
        #expect(try await store.read { db in try await UserEventLog.lastSeq(for: "carol", in: db) } == 0)
        let events = try await store.write { db in
            try await UserEventLog.append([NewUserEvent(userId: "carol", type: .sessionRevoked, data: "{}")], at: .now(), in: db)
        }
        #expect(events.map(\.seq) == [1])
    }

    static func concurrentAppends(_ store: any DatabaseStore) async throws {
        let seqs = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for index in 0..<24 {
                group.addTask {
                    try await store.write { db in
                        // Two users per transaction, in both orders, to exercise the lock order.
                        let users = index.isMultiple(of: 2) ? ["dan", "erin"] : ["erin", "dan"]
                        return try await UserEventLog.append(users.map { NewUserEvent(userId: $0, type: .conversationRead, data: "{}") }, at: .now(), in: db)
                            .filter { $0.userId == "dan" }.map(\.seq)
                    }
                }
            }
            var all: [Int64] = []
            for try await batch in group { all += batch }
            return all
        }
        #expect(seqs.sorted() == Array(1...24))
    }

    static func readSincePages(_ store: any DatabaseStore) async throws {
        try await store.write { db in
            _ = try await UserEventLog.append((1...7).map { NewUserEvent(userId: "fay", type: .conversationRead, data: "\($0)") }, at: .now(), in: db)
        }
        let first = try await store.read { db in try await UserEventLog.events(for: "fay", since: 2, limit: 3, in: db) }
        guard case .events(let events, let more) = first else { Issue.record("expected events"); return }
        #expect(events.map(\.seq) == [3, 4, 5])
        #expect(more)
        let rest = try await store.read { db in try await UserEventLog.events(for: "fay", since: 5, limit: 3, in: db) }
        guard case .events(let tail, let moreAfter) = rest else { Issue.record("expected events"); return }
        #expect(tail.map(\.data) == ["6", "7"])
        #expect(!moreAfter)
        #expect(try await store.read { db in try await UserEventLog.events(for: "fay", since: 7, limit: 3, in: db) } == .events([], more: false))
        #expect(try await store.read { db in try await UserEventLog.events(for: "nobody", since: 0, limit: 3, in: db) } == .events([], more: false))
    }

    static func resyncWhenPruned(_ store: any DatabaseStore) async throws {
        try await store.write { db in
            _ = try await UserEventLog.append((1...3).map { _ in NewUserEvent(userId: "gus", type: .sessionCreated, data: "{}") }, at: Timestamp(millis: 100), in: db)
            _ = try await UserEventLog.append((1...2).map { _ in NewUserEvent(userId: "gus", type: .sessionRevoked, data: "{}") }, at: Timestamp(millis: 900), in: db)
        }
        let pruned = try await store.write { db in try await UserEventLog.prune(before: Timestamp(millis: 500), limit: 2, in: db) }
        #expect(pruned == 2)
        let prunedRest = try await store.write { db in try await UserEventLog.prune(before: Timestamp(millis: 500), limit: 2, in: db) }
        #expect(prunedRest == 1)
        #expect(try await store.read { db in try await UserEventLog.events(for: "gus", since: 0, limit: 10, in: db) } == .resyncRequired)
        #expect(try await store.read { db in try await UserEventLog.events(for: "gus", since: 2, limit: 10, in: db) } == .resyncRequired)
        let page = try await store.read { db in try await UserEventLog.events(for: "gus", since: 3, limit: 10, in: db) }
        guard case .events(let events, _) = page else { Issue.record("expected events after the pruned ones"); return }
        #expect(events.map(\.seq) == [4, 5])
        #expect(try await store.read { db in try await UserEventLog.events(for: "gus", since: 9, limit: 10, in: db) } == .resyncRequired)
        #expect(try await store.read { db in try await UserEventLog.events(for: "gus", since: -1, limit: 10, in: db) } == .resyncRequired)
    }

    static func outboxUntilPublished(_ store: any DatabaseStore) async throws {
        let first = try await store.write { db in
            try await UserEventLog.append([
                NewUserEvent(userId: "hal", type: .sessionCreated, data: "{}"),
                NewUserEvent(userId: "ivy", type: .sessionRevoked, data: "{}"),
                NewUserEvent(userId: "hal", type: .conversationRead, data: "{}"),
            ], at: Timestamp(millis: 10), in: db)
        }
        let entry = try #require(first[0].outbox)
        #expect(first.allSatisfy { $0.outbox == entry })
        let second = try await store.write { db in
            try await UserEventLog.append([NewUserEvent(userId: "hal", type: .conversationOp, data: "{}")], at: Timestamp(millis: 20), in: db)
        }
        let later = try #require(second[0].outbox)
        #expect(later != entry)
        // Rolled back: no entry.
        await #expect(throws: Boom.self) {
            try await store.write { db in
                _ = try await UserEventLog.append([NewUserEvent(userId: "hal", type: .passwordChanged, data: "{}")], at: Timestamp(millis: 15), in: db)
                throw Boom()
            }
        }
        func pending(before millis: Int64) async throws -> [OutboxEntry] {
            try await store.read { db in try await UserEventLog.outbox(before: Timestamp(millis: millis), limit: 10, in: db) }
        }
        #expect(try await pending(before: 10).isEmpty)
        let old = try await pending(before: 11)
        #expect(old.map(\.id) == [entry])
        #expect(old.first?.ranges == [.init(userId: "hal", first: 1, last: 2), .init(userId: "ivy", first: 1, last: 1)])
        #expect(try await pending(before: 21).map(\.id) == [entry, later])
        let listed = try await store.read { db in try await UserEventLog.events(listedIn: old[0], in: db) }
        #expect(listed.map { "\($0.userId)\($0.seq)\($0.type)" } == ["hal1session.created", "hal2conversation.read", "ivy1session.revoked"])
        #expect(listed.allSatisfy { $0.outbox == entry })
        try await store.write { db in try await UserEventLog.removeFromOutbox([entry], in: db) }
        #expect(try await pending(before: 21).map(\.id) == [later])
        // Events pruned from the log: the entry lists nothing any more.
        try await store.write { db in _ = try await UserEventLog.prune(before: Timestamp(millis: 100), limit: 10, in: db) }
        let remaining = try #require(try await pending(before: 21).first)
        #expect(try await store.read { db in try await UserEventLog.events(listedIn: remaining, in: db) }.isEmpty)
        // A user id that would break an entry's text is refused.
        await #expect(throws: StoreError.self) {
            try await store.write { db in try await UserEventLog.append([NewUserEvent(userId: "a,b", type: .sessionCreated, data: "{}")], at: .now(), in: db) }
        }
    }

    static func outboxMigration(_ store: any DatabaseStore) async throws {
        // A database at the step before the outbox, with one event published and one not.
        let opened = try await TestDatabases.open(store.engine, suite: "outbox-migration")
        do {
            let before = Migrator(migrations: Migrations.all.filter { $0.version < 7 }, logger: TestServers.quietLogger)
            try await before.migrate(opened.store)
            try await opened.store.write { db in
                try await db.raw("""
                    INSERT INTO user_events (user_id, seq, type, payload, created_at, published_at)
                    VALUES ('jo', 1, 'a', '{}', 5, 6), ('jo', 2, 'b', '{}', 7, NULL)
                    """).run()
            }
            try await migrator.migrate(opened.store)
            let entries = try await opened.store.read { db in try await UserEventLog.outbox(before: Timestamp(millis: 100), limit: 10, in: db) }
            #expect(entries.map(\.ranges) == [[.init(userId: "jo", first: 2, last: 2)]])
            #expect(try await opened.store.read { db in try await UserEventLog.events(listedIn: entries[0], in: db) }.map(\.type) == ["b"])
        } catch {
            await opened.close()
            throw error
        }
        await opened.close()
    }

    static func outboxEntryText() throws {
        #expect(OutboxEntry(id: "e", ranges: "a:1:2,b:c:3:3")?.ranges == [.init(userId: "a", first: 1, last: 2), .init(userId: "b:c", first: 3, last: 3)])
        for bad in ["", "a:1", "a:x:2", "a:3:2", "a:0:1", ":1:2"] {
            #expect(OutboxEntry(id: "e", ranges: bad) == nil, "\(bad)")
        }
    }
}

@Suite("Storage conformance on SQLite")
struct SQLiteStoreConformanceTests {
    @Test(arguments: StoreConformance.names)
    func conformance(_ name: String) async throws {
        try await StoreConformance.run(name, engine: .sqlite)
    }
}

@Suite("Storage conformance on PostgreSQL", .enabled(if: TestServers.postgresEnabled, TestServers.postgresSkipReason))
struct PostgresStoreConformanceTests {
    @Test(arguments: StoreConformance.names)
    func conformance(_ name: String) async throws {
        try await StoreConformance.run(name, engine: .postgres)
    }
}

@Test("outbox entries are read back from their text; malformed ones are refused")
func outboxEntryText() throws {
    try StoreConformance.outboxEntryText()
}
