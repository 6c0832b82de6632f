import CircleActivity
import CircleConfig
import CircleCore
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing

/// The activity log's chains on both engines: appends are numbered and hashed, any change made
/// directly in the database is found at the right entry, sealed fields are unreadable at rest,
/// and retention keeps the chains verifiable.
@Suite("Security activity chains")
struct ActivityLogTests {
    static var engines: [DatabaseEngine] { TestServers.postgresEnabled ? [.sqlite, .postgres] : [.sqlite] }

    static let sealer = ActivitySealer(ActivitySettings(keys: [.init(id: "k2", bytes: Array(repeating: 7, count: 32)),
                                                               .init(id: "k1", bytes: Array(repeating: 9, count: 32))]))

    /// Runs `body` with a fresh, migrated database of `engine`.
    static func withStore(_ engine: DatabaseEngine, _ body: @Sendable (any DatabaseStore) async throws -> Void) async throws {
        let opened = try await TestDatabases.open(engine, suite: "activity")
        do {
            try await Migrator(logger: TestServers.quietLogger).migrate(opened.store)
            try await body(opened.store)
        } catch {
            await opened.close()
            throw error
        }
        await opened.close()
    }

    /// Appends `count` entries to `chain` at `at`.
    static func append(_ count: Int, to chain: String, at: Timestamp = .now(), in store: any DatabaseStore) async throws -> [ActivityEntry] {
        let engine = store.engine
        return try await store.write { db in
            try await ActivityLog.append((0..<count).map { index in
                ActivityItem(chain: chain, kind: index.isMultiple(of: 2) ? .signIn : .sessionRevoked, sessionId: "s\(index)",
                             ip: "203.0.113.\(index)", userAgent: "Agent/\(index) (secret-agent-string)", details: ["n": String(index)])
            }, sealer: sealer, at: at, engine: engine, in: db)
        }
    }

    static func verify(_ chain: String, _ store: any DatabaseStore) async throws -> ChainCheck {
        try await store.read { db in try await ActivityLog.verify(chain, in: db) }
    }

    @Test("entries are numbered per chain, each hash covers the one before, and the chains verify", arguments: engines)
    func appendAndVerify(_ engine: DatabaseEngine) async throws {
        try await Self.withStore(engine) { store in
            let first = try await Self.append(3, to: "ana", in: store)
            _ = try await Self.append(2, to: "ben", in: store)
            let more = try await Self.append(2, to: "ana", in: store)
            #expect((first + more).map(\.seq) == [1, 2, 3, 4, 5])
            #expect(first[0].hash == first[0].expectedHash(after: ActivityEntry.genesis))
            #expect(more[0].hash == more[0].expectedHash(after: first[2].hash))
            #expect(try await Self.verify("ana", store) == .intact(entries: 5, head: 5))
            #expect(try await Self.verify("ben", store) == .intact(entries: 2, head: 2))
        }
    }

    @Test("a row altered, removed or moved in the database is reported at that entry", arguments: engines)
    func tamperingFound(_ engine: DatabaseEngine) async throws {
        for tamper in ["alter", "alter and rehash", "delete", "swap", "drop the newest"] {
            try await Self.withStore(engine) { store in
                _ = try await Self.append(6, to: "eve", in: store)
                try await store.write { db in
                    switch tamper {
                    case "alter":
                        try await db.raw("UPDATE activity_logs SET details = '{\"n\":\"x\"}' WHERE chain = 'eve' AND seq = 3").run()
                    case "alter and rehash":
                        // Whoever rewrites an entry and its own hash still breaks the next link.
                        let entry = try await ActivityLog.entries("eve", after: 2, limit: 1, in: db)[0]
                        let previous = try await ActivityLog.entries("eve", after: 1, limit: 1, in: db)[0]
                        let forged = ActivityEntry(chain: entry.chain, seq: entry.seq, at: entry.at, kind: "sign-out", sessionId: entry.sessionId,
                                                   keyId: entry.keyId, ipSealed: entry.ipSealed, uaSealed: entry.uaSealed, details: entry.details,
                                                   alert: entry.alert, hash: [])
                        try await db.raw("""
                            UPDATE activity_logs SET kind = 'sign-out', hash = \(bind: Data(forged.expectedHash(after: previous.hash))) WHERE chain = 'eve' AND seq = 3
                            """).run()
                    case "delete":
                        try await db.raw("DELETE FROM activity_logs WHERE chain = 'eve' AND seq = 3").run()
                    case "swap":
                        try await db.raw("UPDATE activity_logs SET seq = 100 WHERE chain = 'eve' AND seq = 3").run()
                        try await db.raw("UPDATE activity_logs SET seq = 3 WHERE chain = 'eve' AND seq = 4").run()
                        try await db.raw("UPDATE activity_logs SET seq = 4 WHERE chain = 'eve' AND seq = 100").run()
                    default:
                        try await db.raw("DELETE FROM activity_logs WHERE chain = 'eve' AND seq = 6").run()
                    }
                }
                let check = try await Self.verify("eve", store)
                let expected: Int64 = switch tamper {
                case "alter and rehash": 4
                case "drop the newest": 6
                default: 3
                }
                guard case .broken(let seq, _) = check else { Issue.record("\(tamper): not found"); return }
                #expect(seq == expected, "\(tamper): \(check)")
            }
        }
    }

    @Test("IP address and user agent are sealed at rest under the current key, open only for their entry, and older keys still open theirs", arguments: engines)
    func sealedAtRest(_ engine: DatabaseEngine) async throws {
        try await Self.withStore(engine) { store in
            let entries = try await Self.append(2, to: "ida", in: store)
            let raw = try await store.read { db in
                try await db.raw("SELECT ip_sealed, ua_sealed, details FROM activity_logs").all().map {
                    (Array(try $0.decode(column: "ip_sealed", as: Data.self)), Array(try $0.decode(column: "ua_sealed", as: Data.self)),
                     try $0.decode(column: "details", as: String.self))
                }
            }
            for (ip, ua, details) in raw {
                let text = String(decoding: ip + ua, as: UTF8.self) + details
                #expect(!text.contains("203.0.113") && !text.contains("secret-agent-string"))
            }
            let entry = entries[1]
            #expect(entry.keyId == "k2")
            #expect(Self.sealer.open(entry.ipSealed, .ip, keyId: entry.keyId, chain: "ida", seq: 2) == "203.0.113.1")
            #expect(Self.sealer.open(entry.uaSealed, .userAgent, keyId: entry.keyId, chain: "ida", seq: 2) == "Agent/1 (secret-agent-string)")
            // Bound to its entry and field: moved elsewhere it does not open.
            #expect(Self.sealer.open(entry.ipSealed, .ip, keyId: entry.keyId, chain: "ida", seq: 1) == nil)
            #expect(Self.sealer.open(entry.ipSealed, .userAgent, keyId: entry.keyId, chain: "ida", seq: 2) == nil)
            // After a rotation (a new first key), entries sealed under the old one still open.
            let rotated = ActivitySealer(ActivitySettings(keys: [.init(id: "k3", bytes: Array(repeating: 1, count: 32)),
                                                                 .init(id: "k2", bytes: Array(repeating: 7, count: 32))]))
            #expect(rotated.currentKeyId == "k3")
            #expect(rotated.open(entry.ipSealed, .ip, keyId: "k2", chain: "ida", seq: 2) == "203.0.113.1")
            #expect(ActivitySealer(ActivitySettings(keys: [.init(id: "k2", bytes: Array(repeating: 8, count: 32))]))
                .open(entry.ipSealed, .ip, keyId: "k2", chain: "ida", seq: 2) == nil, "a wrong key opens nothing")
        }
    }

    @Test("retention removes old entries in batches and keeps each chain verifiable from its anchor", arguments: engines)
    func retentionKeepsAnchor(_ engine: DatabaseEngine) async throws {
        try await Self.withStore(engine) { store in
            let old = Timestamp(millis: 1_000_000)
            _ = try await Self.append(5, to: "joe", at: old, in: store)
            _ = try await Self.append(3, to: "joe", at: .now(), in: store)
            _ = try await Self.append(2, to: "kim", at: old, in: store)
            let engine = store.engine
            let removed = try await store.write { db in try await ActivityLog.prune(before: Timestamp(millis: 2_000_000), limit: 3, engine: engine, in: db) }
            #expect(removed == 3, "a bounded batch")
            var total = removed
            while true {
                let more = try await store.write { db in try await ActivityLog.prune(before: Timestamp(millis: 2_000_000), limit: 3, engine: engine, in: db) }
                total += more
                if more == 0 { break }
            }
            #expect(total == 7)
            #expect(try await Self.verify("joe", store) == .intact(entries: 3, head: 8))
            #expect(try await Self.verify("kim", store) == .intact(entries: 0, head: 2))
            let head = try await store.read { db in try await ActivityLog.head("joe", in: db) }
            #expect(head?.anchorSeq == 5)
            // Tampering after the anchor is still found.
            try await store.write { db in try await db.raw("UPDATE activity_logs SET kind = 'sign-out' WHERE chain = 'joe' AND seq = 7").run() }
            guard case .broken(7, _) = try await Self.verify("joe", store) else { Issue.record("not found after pruning"); return }
        }
    }

    @Test("concurrent appends to one chain: every entry once, numbered without gaps, the chain intact", arguments: engines)
    func concurrentAppends(_ engine: DatabaseEngine) async throws {
        try await Self.withStore(engine) { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 { group.addTask { _ = try await Self.append(2, to: "lou", in: store) } }
                try await group.waitForAll()
            }
            #expect(try await Self.verify("lou", store) == .intact(entries: 32, head: 32))
        }
    }
}
