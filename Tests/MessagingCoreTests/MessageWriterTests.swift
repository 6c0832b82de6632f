import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleKit
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import Foundation
@testable import MessagingCore
@testable import MessagingStore
import SQLKit
import Testing

/// The batching writer on PostgreSQL: a batch is stored in one statement only if its
/// conversations are as it read them; otherwise it is stored again under row locks.
@Suite("Message batches on PostgreSQL", .enabled(if: TestServers.bothEnabled))
struct MessageWriterTests {
    /// A writer of this test's own, publishing on a private in-process bus.
    static func writer(_ store: any DatabaseStore, bus: any MessageBus = LocalBus(), clock: any WallClock = SystemWallClock(),
                       afterRead: (@Sendable () async -> Void)? = nil) -> MessageWriter {
        let logger = TestServers.quietLogger
        let events = EventPublisher(store: store, bus: bus, clock: clock, logger: logger)
        return MessageWriter(store: store, events: events, clock: clock, limits: MessagingLimits(), logger: logger, afterRead: afterRead)
    }

    /// `count` messages from `member`, sealed on one chain, ready for a writer.
    static func messages(_ count: Int, from member: Member, in conversation: String, chain: MembershipChain) throws -> [PendingMessage] {
        var sender = SenderChain.fresh()
        return try (0..<count).map { index in
            let sealed = try member.seal("message \(index)", chain: chain, sender: &sender)
            let header = try MessageHeader(bytes: sealed.header)
            return PendingMessage(conversationId: conversation, convId: chain.convId, sender: member.id, header: header, headerBytes: sealed.header,
                                  ciphertext: sealed.ciphertext, signature: sealed.signature, messageId: Base64URL.encode(header.messageId))
        }
    }

    /// The conversation's message ids in sequence order, and whether the sequence has no gaps.
    static func stored(_ conversation: String, in store: any DatabaseStore) async throws -> (ids: [String], contiguous: Bool) {
        let rows = try await store.read { db in
            try await db.raw("SELECT id, seq FROM messages WHERE conversation_id = \(bind: conversation) ORDER BY seq").all()
        }
        let seqs = try rows.map { try $0.decode(column: "seq", as: Int64.self) }
        return (try rows.map { try $0.decode(column: "id", as: String.self) }, seqs == (0..<seqs.count).map { Int64($0) + 1 })
    }

    /// The message ids of a user's `message.new` events in log order, and whether the user's log
    /// (every event type) is numbered 1...n without gaps up to its counter.
    static func events(of user: String, in store: any DatabaseStore) async throws -> (ids: [String], contiguous: Bool) {
        try await store.read { db in
            let rows = try await db.raw("SELECT seq, type, payload FROM user_events WHERE user_id = \(bind: user) ORDER BY seq").all()
            let last = try await UserEventLog.lastSeq(for: user, in: db)
            let seqs = try rows.map { try $0.decode(column: "seq", as: Int64.self) }
            var ids: [String] = []
            for row in rows where try row.decode(column: "type", as: String.self) == "message.new" {
                let payload = try row.decode(column: "payload", as: String.self)
                let object = try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
                ids.append(try #require(object?["id"] as? String))
            }
            return (ids, seqs == (0..<Int(last)).map { Int64($0) + 1 })
        }
    }

    @Test("another writer storing first between the read and the write: the batch is stored again under locks, after it, each event once")
    func conflictFallsBack() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(2, from: ana, in: conv, chain: chain)
            let plain = Self.writer(store)
            let interloped = Interloped()
            let careful = Self.writer(store) {
                guard await interloped.first() else { return }
                _ = try? await plain.submit(sent[0])
            }
            guard case .stored(let record) = try await careful.submit(sent[1]) else { Issue.record("not stored"); return }
            #expect(record.seq == 2, "numbered after the message stored in between")
            #expect(await plain.batchesAtOnce == 1)
            #expect(await careful.batchesAtOnce == 0)
            #expect(await careful.batchesLocked == 1)
            let (ids, contiguous) = try await Self.stored(conv, in: store)
            #expect(ids == [sent[0].messageId, sent[1].messageId])
            #expect(contiguous)
            for member in [ana, ben] {
                let log = try await Self.events(of: member.id, in: store)
                #expect(log.ids == ids, "each message once, in order, for \(member.account.username)")
                #expect(log.contiguous)
            }
        }
    }

    @Test("the epoch changing between the read and the write: the message is refused as stale, and nothing is stored")
    func epochChangeRefuses() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(1, from: ana, in: conv, chain: chain)
            let settings = try ana.op(chain, .settings, settings: .init(kind: .group, readReceipts: false))
            let interloped = Interloped()
            let careful = Self.writer(store) {
                guard await interloped.first() else { return }
                _ = try? await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(settings), token: ana.token)
            }
            do {
                _ = try await careful.submit(sent[0])
                Issue.record("stored at a stale epoch")
            } catch let problem as Problem {
                #expect(problem.slug == "stale-epoch")
            }
            #expect(await careful.batchesLocked == 1)
            #expect(try await Self.stored(conv, in: store).ids.isEmpty)
            #expect(try await Self.events(of: ben.id, in: store).ids.isEmpty)
        }
    }

    @Test("a writer that wrote a conversation last stores the next batch without reading it; after another writer wrote, it reads again and numbers after it")
    func fromMemory() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(8, from: ana, in: conv, chain: chain)
            let (mine, other) = (Self.writer(store), Self.writer(store))
            func submit(_ index: Int, to writer: MessageWriter) async throws -> Int64 {
                guard case .stored(let record) = try await writer.submit(sent[index]) else { throw TestSupportError("not stored") }
                return record.seq
            }
            // New to the writer, then found as it left it (trusted), then from memory.
            #expect(try await submit(0, to: mine) == 1)
            #expect(try await submit(1, to: mine) == 2)
            #expect(await mine.batchesFromMemory == 0)
            #expect(try await submit(2, to: mine) == 3)
            #expect(await mine.batchesFromMemory == 1)
            // Another writer stores in between: the attempt from memory stores nothing, the
            // conversation is read again, and the message is numbered after the other's.
            #expect(try await submit(3, to: other) == 4)
            #expect(try await submit(4, to: mine) == 5)
            #expect(await mine.batchesFromMemory == 1)
            #expect(await mine.batchesLocked == 0)
            #expect(try await submit(5, to: mine) == 6)
            #expect(try await submit(6, to: mine) == 7)
            #expect(await mine.batchesFromMemory == 2)
            // A message sent again through memory: its id is taken, so it is answered as a repeat.
            guard case .duplicate(let again) = try await mine.submit(sent[6]) else { Issue.record("stored twice"); return }
            #expect(again.seq == 7)
            #expect(await mine.batchesLocked == 1)
            #expect(try await submit(7, to: mine) == 8)
            let (ids, contiguous) = try await Self.stored(conv, in: store)
            #expect(ids == sent.map(\.messageId))
            #expect(contiguous)
            for member in [ana, ben] {
                let log = try await Self.events(of: member.id, in: store)
                #expect(log.ids == ids, "each message once, in order, for \(member.account.username)")
                #expect(log.contiguous)
            }
        }
    }

    @Test("each batch's events are listed in one outbox entry, written by the statement that stores the batch; it stays while the bus is down")
    func outboxEntryPerBatch() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(3, from: ana, in: conv, chain: chain)
            let down = RedisBus(settings: RedisSettings(host: "127.0.0.1", port: try FreePort.find()), logger: TestServers.quietLogger)
            // The writer's clock is an hour ahead, so the server's own relay (which takes entries
            // older than two seconds) leaves these entries alone however slow the machine is.
            let writer = Self.writer(store, bus: down, clock: FixedClock(Timestamp.now().adding(seconds: 3600)))
            let (anaBefore, benBefore) = try await store.read { db in
                (try await UserEventLog.lastSeq(for: ana.id, in: db), try await UserEventLog.lastSeq(for: ben.id, in: db))
            }
            for message in sent { _ = try await writer.submit(message) }
            #expect(await writer.batchesAtOnce == 3)
            #expect(await writer.batchesFromMemory == 1)
            let entries = try await store.read { db in try await UserEventLog.outbox(before: Timestamp.now().adding(seconds: 7200), limit: 1000, in: db) }
            let mine = entries.filter { $0.ranges.contains { $0.userId == ana.id && $0.first > anaBefore } }
                .sorted { $0.ranges.map(\.first).max()! < $1.ranges.map(\.first).max()! }
            let expected = (1...3).map { index in
                [ana.id: anaBefore + Int64(index), ben.id: benBefore + Int64(index)].sorted { $0.key < $1.key }
                    .map { OutboxEntry.Range(userId: $0.key, first: $0.value, last: $0.value) }
            }
            #expect(mine.map(\.ranges) == expected)
        }
    }

    @Test("a settings change made elsewhere: a message at the new epoch is accepted although the writer remembers the old one; one at the old epoch is refused")
    func memoryNeverRefuses() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            var (conv, chain) = try await ana.create(with: [ben], on: api)
            let before = try Self.messages(3, from: ana, in: conv, chain: chain)
            let writer = Self.writer(store)
            for message in before.prefix(2) {
                guard case .stored = try await writer.submit(message) else { Issue.record("not stored"); return }
            }
            let settings = try ana.op(chain, .settings, settings: .init(kind: .group, readReceipts: false))
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(settings), token: ana.token).status == 201)
            try chain.append(settings, actorIdentity: ana.identityPublic)
            let after = try Self.messages(1, from: ana, in: conv, chain: chain)
            guard case .stored(let record) = try await writer.submit(after[0]) else { Issue.record("not stored"); return }
            #expect(record.seq == 3)
            do {
                _ = try await writer.submit(before[2])
                Issue.record("stored at a stale epoch")
            } catch let problem as Problem {
                #expect(problem.slug == "stale-epoch")
            }
            #expect(try await Self.stored(conv, in: store).ids == before.prefix(2).map(\.messageId) + [after[0].messageId])
        }
    }

    @Test("two writers storing into one conversation at once: every message once, numbered without gaps, each member's events likewise")
    func concurrentWriters() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(60, from: ana, in: conv, chain: chain)
            let writers = [Self.writer(store), Self.writer(store)]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, message) in sent.enumerated() {
                    group.addTask {
                        guard case .stored = try await writers[index % 2].submit(message) else { throw TestSupportError("not stored") }
                    }
                }
                try await group.waitForAll()
            }
            let (ids, contiguous) = try await Self.stored(conv, in: store)
            #expect(Set(ids) == Set(sent.map(\.messageId)))
            #expect(ids.count == 60)
            #expect(contiguous)
            for member in [ana, ben] {
                let log = try await Self.events(of: member.id, in: store)
                #expect(log.ids == ids, "each message once, in sequence order, for \(member.account.username)")
                #expect(log.contiguous)
            }
            let atOnce = await writers[0].batchesAtOnce + writers[1].batchesAtOnce
            #expect(atOnce >= 1)
        }
    }
}

/// True the first time only.
actor Interloped {
    private var done = false
    func first() -> Bool {
        defer { done = true }
        return !done
    }
}
