import AsyncAlgorithms
import CircleCore
import CircleProtocol
import CircleStore
import Logging
import MessagingStore
import ServiceLifecycle

/// What became of a submitted message.
package enum WriteOutcome: Sendable {
    case stored(MessageRecord)
    case duplicate(MessageRecord)
}

/// Stores messages (new ones, edits and deletes) in batches: every message submitted while a
/// batch is being stored joins the next one. Each message is checked on its own by
/// `MessageRules`, exactly as a lone one would be; a refused message gets its own answer and does
/// not affect the others. Nobody is answered before the batch commits; members hear right after.
///
/// A `Service`: batches are stored by `run()`, so none outlives the service group. At shutdown
/// it stops taking messages (503) and stores what it took before returning.
package actor MessageWriter: Service {
    let batches: any MessageBatchRepository
    let publisher: MessagePublisher
    let clock: any WallClock
    let limits: MessagingLimits
    let logger: Logger
    /// The most messages in one batch.
    let batchLimit: Int

    private var queue: [(PendingMessage, CheckedContinuation<WriteOutcome, any Error>)] = []
    private var accepting = true
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    package init(batches: any MessageBatchRepository, publisher: MessagePublisher, clock: any WallClock, limits: MessagingLimits,
                 logger: Logger, batchLimit: Int = 128) {
        self.batches = batches
        self.publisher = publisher
        self.clock = clock
        self.limits = limits
        self.logger = logger
        self.batchLimit = batchLimit
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    static let stopping = Problem(status: 503, slug: "unavailable", title: "Unavailable", detail: "The server is stopping: send again in a moment.")

    /// Stores one message (in the next batch) and answers once it is committed.
    package func submit(_ message: PendingMessage) async throws -> WriteOutcome {
        guard accepting else { throw Self.stopping }
        return try await withCheckedThrowingContinuation { continuation in
            queue.append((message, continuation))
            wake.yield()
        }
    }

    package func run() async throws {
        for await _ in wakeups.cancelOnGracefulShutdown() {
            await drain()
        }
        accepting = false
        await drain()
    }

    private func drain() async {
        while !queue.isEmpty {
            let batch = Array(queue.prefix(batchLimit))
            queue.removeFirst(batch.count)
            do {
                let (outcomes, stored) = try await write(batch.map(\.0))
                // Committed: the senders may hear first; members hear right after.
                for ((_, continuation), outcome) in zip(batch, outcomes) { continuation.resume(with: outcome) }
                await publisher.publish(stored)
            } catch {
                logger.error("message batch failed", metadata: ["count": "\(batch.count)", "error": "\(String(reflecting: error))"])
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
    }

    /// How batches were stored, for tests and metrics: in one statement (from a read or from
    /// memory), or in a transaction with row locks.
    private(set) var batchesAtOnce = 0
    private(set) var batchesLocked = 0
    private(set) var batchesFromMemory = 0

    /// Conversations as this writer last read or wrote them (PostgreSQL): enough to check and
    /// number a batch without reading them first. `trusted` once a read found a conversation as
    /// this writer had left it (no other writer in between); an entry is only ever a guess, since
    /// the statement that stores a batch still checks each conversation's sequence number and
    /// epoch (which every membership or settings change moves) and stores nothing if one differs.
    private var known: [String: KnownConversation] = [:]
    struct KnownConversation {
        var conversation: BatchConversation
        var trusted: Bool
    }

    /// The most conversations `known` holds; it starts over when full.
    static let knownLimit = 50_000

    /// Stores a batch; returns each message's outcome and what was stored.
    ///
    /// A batch of new messages on PostgreSQL normally takes one round trip: one statement that
    /// stores it only if no conversation changed since this writer last wrote it; two when a
    /// conversation must be read first (new to this writer, last written by another replica, or
    /// a message would be refused). Otherwise (a conversation changed, a message repeats an
    /// earlier one, an edit or delete is in the batch, or the engine has no such statement) the
    /// batch is stored the careful way: one transaction that locks its conversations first.
    private func write(_ messages: [PendingMessage]) async throws -> ([Result<WriteOutcome, any Error>], StoredBatch) {
        let now = clock.now()
        if batches.storesAtOnce, messages.allSatisfy({ $0.refersTo == nil }) {
            do {
                if let result = try await writeAtOnce(messages, now: now) {
                    batchesAtOnce += 1
                    return result
                }
            } catch MessageBatchError.idTaken {
                // A message repeats an id stored meanwhile: the careful path answers it as such.
            } catch {
                // Nothing was stored unless the commit's answer was lost; then the careful path
                // finds the messages and answers them as repeats.
                logger.warning("storing a message batch in one statement failed; storing it in a transaction", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
        batchesLocked += 1
        for message in messages { known[message.conversationId] = nil }
        let limits = self.limits
        let keys = messages.flatMap { message in
            [message.key] + (message.refersTo.map { [MessageKey(conversationId: message.conversationId, messageId: $0)] } ?? [])
        }
        return try await batches.storeLocked(conversationIds: messages.map(\.conversationId), keys: keys, now: now) { read in
            let plan = Self.plan(messages, conversations: read.conversations, stored: read.stored, now: now, limits: limits)
            return (plan.write, (plan.outcomes, plan.stored))
        }
    }

    /// What a batch stored, for publishing: its messages and who may read each conversation.
    package struct StoredBatch: Sendable {
        package var messages: [MessageRecord] = []
        package var members: [String: [String]] = [:]
        package var outbox: String?
    }

    /// A batch decided from its conversations as read.
    struct Plan {
        var outcomes: [Result<WriteOutcome, any Error>] = []
        var write = BatchWrite()
        var stored = StoredBatch()
    }

    /// Checks each message on its own against its conversation, its members and the messages
    /// stored under its id (and the id it refers to), and numbers the accepted ones.
    static func plan(_ messages: [PendingMessage], conversations: [String: BatchConversation], stored: [MessageKey: MessageRecord],
                     now: Timestamp, limits: MessagingLimits) -> Plan {
        var plan = Plan()
        var seen = stored
        var lastSeq: [String: Int64] = [:]
        for message in messages {
            do {
                let conversation = try MessageRules.checkSender(message, in: conversations[message.conversationId])
                if let earlier = seen[message.key] {
                    try MessageRules.checkRepeat(message, of: earlier)
                    plan.outcomes.append(.success(.duplicate(earlier)))
                    continue
                }
                let originalKey = message.refersTo.map { MessageKey(conversationId: message.conversationId, messageId: $0) }
                let expiresAt = try MessageRules.checkNew(message, in: conversation, original: originalKey.flatMap { seen[$0] }, now: now, limits: limits)
                let seq = (lastSeq[message.conversationId] ?? conversation.record.lastSeq) + 1
                lastSeq[message.conversationId] = seq
                let record = MessageRecord(
                    conversationId: message.conversationId, id: message.messageId, seq: seq, senderId: message.sender,
                    kind: Int64(message.header.kind.rawValue), refersTo: message.refersTo, header: message.headerBytes,
                    ciphertext: message.ciphertext, signature: message.signature, expiresAt: expiresAt, createdAt: now.millis,
                    editedBy: nil, deletedAt: nil)
                seen[message.key] = record
                if let originalKey, let original = seen[originalKey] {
                    let isEdit = message.header.kind == .edit
                    plan.write.marks.append(BatchWrite.Mark(original: originalKey, editId: isEdit ? message.messageId : nil))
                    seen[originalKey] = original.marked(editedBy: isEdit ? message.messageId : nil, deletedAt: isEdit ? nil : now.millis)
                }
                plan.write.messages.append(record)
                plan.stored.members[message.conversationId] = conversation.members
                plan.outcomes.append(.success(.stored(record)))
            } catch {
                plan.outcomes.append(.failure(error))
            }
        }
        plan.write.conversations = lastSeq.keys.sorted().map { id in
            let record = conversations[id]!.record
            return BatchWrite.Conversation(id: id, readSeq: record.lastSeq, epoch: record.epoch, lastSeq: lastSeq[id]!)
        }
        plan.stored.messages = plan.write.messages
        plan.stored.outbox = plan.write.isEmpty ? nil : plan.write.outbox
        return plan
    }

    /// The most messages one statement carries (each list is one array parameter; this keeps a
    /// statement's size bounded).
    static let messagesPerStatement = 4000

    /// PostgreSQL: when every conversation of the batch is known and trusted and every message
    /// would be accepted, one statement stores the batch; otherwise the conversations, their
    /// members and whether any message id is taken are read first. Nil when the careful path
    /// must do it (see `write`).
    private func writeAtOnce(_ messages: [PendingMessage], now: Timestamp) async throws -> ([Result<WriteOutcome, any Error>], StoredBatch)? {
        let ids = Array(Set(messages.map(\.conversationId))).sorted()
        if ids.allSatisfy({ known[$0]?.trusted == true }) {
            var conversations: [String: BatchConversation] = [:]
            for id in ids { conversations[id] = known[id]!.conversation }
            // A refusal is only ever decided on what was just read.
            let plan = Self.plan(messages, conversations: conversations, stored: [:], now: now, limits: limits)
            if plan.outcomes.allSatisfy({ if case .success(.stored) = $0 { true } else { false } }), plan.write.messages.count <= Self.messagesPerStatement {
                if try await store(plan, now: now) {
                    batchesFromMemory += 1
                    return (plan.outcomes, plan.stored)
                }
                // Another writer (replica) wrote to one of them: read them again.
                for id in ids { known[id]?.trusted = false }
            }
        }
        guard let conversations = try await batches.read(conversationIds: ids, messages: messages.map(\.key)) else { return nil }
        for (id, conversation) in conversations {
            let before = known[id]?.conversation.record
            if known.count >= Self.knownLimit { known.removeAll(keepingCapacity: true) }
            known[id] = KnownConversation(conversation: conversation,
                                          trusted: before?.lastSeq == conversation.record.lastSeq && before?.epoch == conversation.record.epoch)
        }
        let plan = Self.plan(messages, conversations: conversations, stored: [:], now: now, limits: limits)
        guard !plan.write.isEmpty else { return (plan.outcomes, plan.stored) }
        guard plan.write.messages.count <= Self.messagesPerStatement else { return nil }
        return try await store(plan, now: now) ? (plan.outcomes, plan.stored) : nil
    }

    /// The one statement; false (nothing stored) when a conversation changed since it was read.
    /// A message id taken meanwhile fails the statement: the careful path answers it as a repeat.
    private func store(_ plan: Plan, now: Timestamp) async throws -> Bool {
        guard try await batches.storeAtOnce(plan.write, now: now) else { return false }
        for conversation in plan.write.conversations { known[conversation.id]?.conversation.record.lastSeq = conversation.lastSeq }
        return true
    }
}

extension MessageRecord {
    /// The record after an edit or delete marked it.
    func marked(editedBy: String?, deletedAt: Int64?) -> MessageRecord {
        MessageRecord(conversationId: conversationId, id: id, seq: seq, senderId: senderId, kind: kind, refersTo: refersTo, header: header,
                      ciphertext: deletedAt == nil ? ciphertext : [], signature: signature, expiresAt: expiresAt, createdAt: createdAt,
                      editedBy: editedBy ?? self.editedBy, deletedAt: deletedAt ?? self.deletedAt)
    }
}
