import AsyncAlgorithms
import CircleCore
import CircleStore
import Logging
import MessagingStore
import ServiceLifecycle

/// Publishes messages that were committed but never published (the writer's process died
/// between commit and publish, or the bus was down), so no live member is stranded until the
/// conversation's next message. Several replicas may run it: on PostgreSQL each batch of outbox
/// entries is claimed with `FOR UPDATE SKIP LOCKED`. A repeated delivery is harmless: clients
/// drop messages at or below their cursor.
package struct MessageRelay: Service {
    let store: any DatabaseStore
    let publisher: MessagePublisher
    let clock: any WallClock
    let logger: Logger
    /// How old an entry must be before the relay takes it.
    let grace: Duration
    let interval: Duration

    package init(store: any DatabaseStore, publisher: MessagePublisher, clock: any WallClock, logger: Logger,
                 grace: Duration = .seconds(2), interval: Duration = .milliseconds(500)) {
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.logger = logger
        self.grace = grace
        self.interval = interval
    }

    package func run() async throws {
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            do {
                while try await relayBatch() == 100 {}
            } catch {
                logger.warning("message relay pass failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Publishes the messages of up to `limit` entries older than the grace; returns how many
    /// entries it handled. An entry is deleted once its messages went out; a message deleted or
    /// expired since is not sent (its row says so, or is gone).
    @discardableResult
    package func relayBatch(limit: Int = 100) async throws -> Int {
        let now = clock.now()
        let cutoff = Timestamp(millis: now.millis - grace.milliseconds)
        return try await store.yieldingWrite { db in
            let entries = try await MessageOutbox.pending(before: cutoff, limit: limit, lock: store.engine == .postgres, in: db)
            guard !entries.isEmpty else { return 0 }
            // Every entry's messages, each conversation's in sequence order (entries written in
            // the same millisecond come back in no particular order).
            var messages: [MessageRecord] = []
            var members: [String: [String]] = [:]
            for range in entries.flatMap(\.ranges) {
                messages += try await MessageRepository.range(range.conversationId, first: range.first, last: range.last, at: now, in: db)
                if members[range.conversationId] == nil {
                    members[range.conversationId] = try await ConversationRepository.memberIds(of: range.conversationId, in: db)
                }
            }
            messages.sort { ($0.conversationId, $0.seq) < ($1.conversationId, $1.seq) }
            guard await publisher.publish(messages, members: members) else { return 0 }
            let done = entries.map(\.id)
            let sent = messages.count
            try await MessageOutbox.remove(done, in: db)
            if sent > 0 {
                logger.info("relayed unpublished messages", metadata: ["entries": "\(done.count)", "messages": "\(sent)"])
            }
            return done.count
        }
    }
}
