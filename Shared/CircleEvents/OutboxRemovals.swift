import AsyncAlgorithms
import CircleStore
import Logging
import ServiceLifecycle

/// Outbox entries whose changes went out on the bus, deleted together: the first added starts a
/// short wait, and every entry added until it ends goes in one statement per 500. An entry left
/// behind (crash, database error) costs only a repeated delivery by the relay, which clients drop
/// by sequence number. The wait (200 ms, well inside the relay's 2 s grace) keeps these commits,
/// each a disk flush, from queueing with the changes' own at every request.
///
/// A `Service`: the deleting runs in `run()`, and what is pending at shutdown is deleted before
/// it returns.
public actor OutboxRemovals: Service {
    /// Which outbox.
    public enum Table: String, Sendable {
        /// `event_outbox`: appends to users' event logs.
        case events = "event_outbox"
        /// `message_outbox`: batches of conversation messages.
        case messages = "message_outbox"
    }

    let store: any DatabaseStore
    let table: Table
    let logger: Logger
    let delay: Duration
    private var pending: [String] = []
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(store: any DatabaseStore, table: Table, logger: Logger, delay: Duration = .milliseconds(200)) {
        self.store = store
        self.table = table
        self.logger = logger
        self.delay = delay
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func add(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        let wasEmpty = pending.isEmpty
        pending += ids
        if wasEmpty { wake.yield() }
    }

    public func run() async throws {
        for await _ in wakeups.cancelOnGracefulShutdown() {
            try? await Task.sleep(for: delay)
            await flush()
        }
        await flush()
    }

    /// Deletes every pending entry now.
    public func flush() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(500))
            pending.removeFirst(batch.count)
            do {
                let table = self.table
                try await store.statement { db in try await Outbox.remove(batch, from: table.rawValue, in: db) }
            } catch {
                logger.warning("deleting published outbox entries failed; the relay may resend them", metadata: ["table": "\(table.rawValue)", "error": "\(error)"])
            }
        }
    }
}
