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
import Synchronization
import Testing

/// The batching writer on PostgreSQL: a batch is stored in one statement only if its
/// conversations are as it read them; otherwise it is stored again under row locks. Messages
/// reach members live, never through their event logs.
@Suite("Message batches on PostgreSQL", .enabled(if: TestServers.bothEnabled))
struct MessageWriterTests {
    /// Writers of this test's own, running as the services they are while `body` runs,
    /// publishing on `bus`; `afterRead` runs between a batch's read and its write.
    static func withWriters<T: Sendable>(
        count: Int = 1, _ store: any DatabaseStore, bus: any MessageBus = LocalBus(), clock: any WallClock = SystemWallClock(),
        afterRead: (@Sendable () async -> Void)? = nil, _ body: @Sendable ([MessageWriter]) async throws -> T
    ) async throws -> T {
        let logger = TestServers.quietLogger
        let events = EventPublisher(store: store, bus: bus, logger: logger)
        let writers = (0..<count).map { _ in
            var batches = messageBatches(store, logger: logger)
            if let afterRead { batches = HookedBatches(inner: batches, afterRead: afterRead) }
            return MessageWriter(batches: batches, publisher: MessagePublisher(events: events, store: store, logger: logger), clock: clock,
                                 limits: MessagingLimits(), logger: logger)
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in writers { group.addTask { try await writer.run() } }
            defer { group.cancelAll() }
            return try await body(writers)
        }
    }

    /// The message ids in the `message.new` frames published to a user (on their channel, or
    /// listing them on the fan-out channel), in arrival order.
    final class Published: Sendable {
        private let seen = Mutex<[String]>([])
        private let subscriptions = Mutex<[BusSubscription]>([])

        static func follow(_ user: String, on bus: any MessageBus) async throws -> Published {
            let published = Published()
            let own = try await bus.subscribe(to: EventPublisher.channel(forUser: user)) { event in
                guard case .message(let payload) = event, let frame = try? EventFrame(decoding: payload) else { return }
                published.saw(frame)
            }
            let fanOut = try await bus.subscribe(to: FanOutFrame.channel) { event in
                guard case .message(let payload) = event, let fanOut = try? FanOutFrame(decoding: payload), fanOut.lists(user) else { return }
                published.saw(fanOut.frame)
            }
            published.subscriptions.withLock { $0 = [own, fanOut] }
            return published
        }

        private func saw(_ frame: EventFrame) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(frame.text.utf8)) as? [String: Any],
                  object["type"] as? String == "message.new", let data = object["data"] as? [String: Any], let id = data["id"] as? String else { return }
            seen.withLock { $0.append(id) }
        }

        /// The ids once `count` arrived (or after 30 s: a bound for a broken test, not a measure).
        func wait(for count: Int) async -> [String] {
            let deadline = ContinuousClock.now + .seconds(30)
            while seen.withLock({ $0.count }) < count, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            return seen.withLock { $0 }
        }
    }

    /// `count` messages from `member`, sealed on one chain, ready for a writer.
    static func messages(_ count: Int, from member: Member, in conversation: String, chain: MembershipChain) throws -> [PendingMessage] {
        var sender = SenderChain.fresh()
        return try (0..<count).map { index in
            let sealed = try member.seal("message \(index)", chain: chain, sender: &sender)
            let header = try MessageHeader(bytes: sealed.header)
            return PendingMessage(conversation: ConversationID(text: conversation)!, sender: member.id, header: header, headerBytes: sealed.header,
                                  ciphertext: sealed.ciphertext, signature: sealed.signature)
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

    /// How many of a user's stored events name a message (none should: messages are read from
    /// their conversation), and whether the user's log is numbered 1...n up to its counter.
    static func events(of user: String, in store: any DatabaseStore) async throws -> (messages: Int, contiguous: Bool) {
        try await store.read { db in
            let rows = try await db.raw("SELECT seq, type FROM user_events WHERE user_id = \(bind: user) ORDER BY seq").all()
            let last = try await UserEventLog.lastSeq(for: user, in: db)
            let seqs = try rows.map { try $0.decode(column: "seq", as: Int64.self) }
            let messages = try rows.filter { try $0.decode(column: "type", as: String.self) == "message.new" }.count
            return (messages, seqs == (0..<Int(last)).map { Int64($0) + 1 })
        }
    }

    @Test("another writer storing first between the read and the write: the batch is stored again under locks, after it; each member hears each message once")
    func conflictFallsBack() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(2, from: ana, in: conv, chain: chain)
            let bus = LocalBus()
            let heard = try await Published.follow(ben.id, on: bus)
            try await Self.withWriters(store, bus: bus) { plain in
                let interloped = Interloped()
                try await Self.withWriters(store, bus: bus, afterRead: {
                    guard await interloped.first() else { return }
                    _ = try? await plain[0].submit(sent[0])
                }) { careful in
                    guard case .stored(let record) = try await careful[0].submit(sent[1]) else { Issue.record("not stored"); return }
                    #expect(record.seq == 2, "numbered after the message stored in between")
                    #expect(await plain[0].batchesAtOnce == 1)
                    #expect(await careful[0].batchesAtOnce == 0)
                    #expect(await careful[0].batchesLocked == 1)
                }
            }
            let (ids, contiguous) = try await Self.stored(conv, in: store)
            #expect(ids == [sent[0].messageId, sent[1].messageId])
            #expect(contiguous)
            #expect(await heard.wait(for: 2) == ids, "each message once, in order")
            for member in [ana, ben] {
                let log = try await Self.events(of: member.id, in: store)
                #expect(log.messages == 0, "no copy of a message in \(member.account.username)'s event log")
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
            try await Self.withWriters(store, afterRead: {
                guard await interloped.first() else { return }
                _ = try? await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(settings), token: ana.token)
            }) { writers in
                do {
                    _ = try await writers[0].submit(sent[0])
                    Issue.record("stored at a stale epoch")
                } catch let problem as Problem {
                    #expect(problem.slug == "stale-epoch")
                }
                #expect(await writers[0].batchesLocked == 1)
            }
            #expect(try await Self.stored(conv, in: store).ids.isEmpty)
            let conversation = try await store.read { db in try await ConversationRepository.conversation(conv, member: ana.id, in: db) }
            #expect(conversation?.0.lastSeq == 0, "no sequence number taken by the refused batch")
        }
    }

    @Test("a writer that wrote a conversation last stores the next batch without reading it; after another writer wrote, it reads again and numbers after it")
    func fromMemory() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(8, from: ana, in: conv, chain: chain)
            try await Self.withWriters(count: 2, store) { writers in
                let (mine, other) = (writers[0], writers[1])
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
            }
            let (ids, contiguous) = try await Self.stored(conv, in: store)
            #expect(ids == sent.map(\.messageId))
            #expect(contiguous)
        }
    }

    @Test("each batch is listed in one message-outbox entry, written by the statement that stores it; entries stay while the bus is down and the relay publishes them")
    func outboxEntryPerBatch() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(3, from: ana, in: conv, chain: chain)
            let down = RedisBus(settings: RedisSettings(host: "127.0.0.1", port: try FreePort.find()), logger: TestServers.quietLogger)
            // The writer's clock is an hour ahead, so the server's own relay (which takes entries
            // older than two seconds) leaves these entries alone however slow the machine is.
            let ahead = FixedClock(Timestamp.now().adding(seconds: 3600))
            try await Self.withWriters(store, bus: down, clock: ahead) { writers in
                for message in sent { _ = try await writers[0].submit(message) }
                #expect(await writers[0].batchesAtOnce == 3)
                #expect(await writers[0].batchesFromMemory == 1)
            }
            let entries = try await store.read { db in
                try await MessageOutbox.pending(before: Timestamp.now().adding(seconds: 7200), limit: 1000, lock: false, in: db)
            }
            let mine = entries.flatMap(\.ranges).filter { $0.conversationId == conv }.sorted { $0.first < $1.first }
            #expect(mine == (1...3).map { MessageOutbox.Range(conversationId: conv, first: Int64($0), last: Int64($0)) })

            // The relay (its clock two hours ahead: the entries are past its grace) publishes
            // them, in order, and removes them.
            let bus = LocalBus()
            let heard = try await Published.follow(ben.id, on: bus)
            let logger = TestServers.quietLogger
            let publisher = MessagePublisher(events: EventPublisher(store: store, bus: bus, logger: logger), store: store, logger: logger)
            let relay = MessageRelay(store: store, publisher: publisher, clock: FixedClock(Timestamp.now().adding(seconds: 7200)), logger: logger)
            #expect(try await relay.relayBatch() >= 3)
            #expect(await heard.wait(for: 3) == sent.map(\.messageId))
            let left = try await store.read { db in
                try await MessageOutbox.pending(before: Timestamp.now().adding(seconds: 7200), limit: 1000, lock: false, in: db)
            }
            #expect(!left.flatMap(\.ranges).contains { $0.conversationId == conv })
        }
    }

    @Test("a settings change made elsewhere: a message at the new epoch is accepted although the writer remembers the old one; one at the old epoch is refused")
    func memoryNeverRefuses() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, created) = try await ana.create(with: [ben], on: api)
            var chain = created
            let before = try Self.messages(3, from: ana, in: conv, chain: chain)
            let settings = try ana.op(chain, .settings, settings: .init(kind: .group, readReceipts: false))
            try chain.append(settings, actorIdentity: ana.identityPublic)
            let after = try Self.messages(1, from: ana, in: conv, chain: chain)
            try await Self.withWriters(store) { writers in
                let writer = writers[0]
                for message in before.prefix(2) {
                    guard case .stored = try await writer.submit(message) else { Issue.record("not stored"); return }
                }
                #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(settings), token: ana.token).status == 201)
                guard case .stored(let record) = try await writer.submit(after[0]) else { Issue.record("not stored"); return }
                #expect(record.seq == 3)
                do {
                    _ = try await writer.submit(before[2])
                    Issue.record("stored at a stale epoch")
                } catch let problem as Problem {
                    #expect(problem.slug == "stale-epoch")
                }
            }
            #expect(try await Self.stored(conv, in: store).ids == before.prefix(2).map(\.messageId) + [after[0].messageId])
        }
    }

    @Test("two writers storing into one conversation at once: every message once, numbered without gaps, and published to each member once")
    func concurrentWriters() async throws {
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            let sent = try Self.messages(60, from: ana, in: conv, chain: chain)
            let bus = LocalBus()
            let heard = try await Published.follow(ben.id, on: bus)
            let atOnce = try await Self.withWriters(count: 2, store, bus: bus) { writers in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, message) in sent.enumerated() {
                        group.addTask {
                            guard case .stored = try await writers[index % 2].submit(message) else { throw TestSupportError("not stored") }
                        }
                    }
                    try await group.waitForAll()
                }
                return await writers[0].batchesAtOnce + writers[1].batchesAtOnce
            }
            let (ids, contiguous) = try await Self.stored(conv, in: store)
            #expect(Set(ids) == Set(sent.map(\.messageId)))
            #expect(ids.count == 60)
            #expect(contiguous)
            let published = await heard.wait(for: 60)
            #expect(published.count == 60 && Set(published) == Set(ids), "each message published once")
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

/// The repository with a step of the test's between a batch's read and its write.
struct HookedBatches: MessageBatchRepository {
    let inner: any MessageBatchRepository
    let afterRead: @Sendable () async -> Void

    var storesAtOnce: Bool { inner.storesAtOnce }

    func read(conversationIds: [String], messages: [MessageKey]) async throws -> [String: BatchConversation]? {
        let read = try await inner.read(conversationIds: conversationIds, messages: messages)
        await afterRead()
        return read
    }

    func storeAtOnce(_ write: BatchWrite, now: Timestamp) async throws -> Bool {
        try await inner.storeAtOnce(write, now: now)
    }

    func storeLocked<Outcome: Sendable>(
        conversationIds: [String], keys: [MessageKey], now: Timestamp, decide: @escaping @Sendable (LockedRead) -> (BatchWrite, Outcome)
    ) async throws -> Outcome {
        try await inner.storeLocked(conversationIds: conversationIds, keys: keys, now: now, decide: decide)
    }
}
