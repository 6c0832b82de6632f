import AsyncAlgorithms
import CircleBus
import CircleCore
import CircleStore
import Logging
import NIOCore
import PresenceStore
import ServiceLifecycle
import Synchronization

/// Reads the gateways' connection reports (`presence.connections`) as one member of the
/// presence replicas' consumer group: each entry is handled by one replica, acknowledged after
/// its change committed; entries a crashed replica took and never acknowledged are claimed after
/// `claimAfter` by whichever replica looks first. Handling is idempotent (sockets are keyed, a
/// close leaves a tombstone), so an entry handled twice changes nothing.
package struct ConnectionConsumer: Service {
    let store: any DatabaseStore
    let bus: any MessageBus
    let presence: PresenceService
    let clock: any WallClock
    let logger: Logger
    /// How far this consumer has read (the sweeper's measure of which leases it has seen).
    let backlog: ReportBacklog
    /// The gateways asked for their sockets lately.
    private let asked = ResyncRequests()
    /// This replica's name in the consumer group.
    let consumer: String
    let claimAfter: Duration
    let block: Duration

    package init(store: any DatabaseStore, bus: any MessageBus, presence: PresenceService, clock: any WallClock, logger: Logger, backlog: ReportBacklog = ReportBacklog(),
                 consumer: String = Base64URL.encode(SecureRandom.bytes(9)), claimAfter: Duration = .seconds(30), block: Duration = .seconds(2)) {
        self.store = store
        self.bus = bus
        self.presence = presence
        self.clock = clock
        self.logger = logger
        self.backlog = backlog
        self.consumer = consumer
        self.claimAfter = claimAfter
        self.block = block
    }

    package func run() async throws {
        var ready = false
        var lastClaim = ContinuousClock.now
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                if !ready {
                    try await bus.createGroup(stream: ConnectionReport.stream, group: ConnectionReport.group)
                    ready = true
                }
                let readAt = clock.now()
                var entries = try await bus.readGroup(stream: ConnectionReport.stream, group: ConnectionReport.group, consumer: consumer, count: Self.batch, block: block)
                // Where reading reached, recorded once the entries read are applied (a sweep in
                // between would judge leases that are in hand but not yet in the database).
                let reached = entries.count == Self.batch ? entries.last.flatMap { ConnectionReport.addedAt(entryId: $0.id) } : nil
                if ContinuousClock.now - lastClaim >= claimAfter / 2 {
                    lastClaim = ContinuousClock.now
                    entries += try await bus.claimIdle(stream: ConnectionReport.stream, group: ConnectionReport.group, consumer: consumer, minIdle: claimAfter, count: Self.batch)
                }
                guard !entries.isEmpty else {
                    backlog.read(reached, at: readAt)
                    continue
                }
                try await handle(entries)
                try await bus.ack(stream: ConnectionReport.stream, group: ConnectionReport.group, ids: entries.map(\.id))
                backlog.read(reached, at: readAt)
            } catch is CancellationError {
                break
            } catch {
                logger.warning("presence: reading connection reports failed", metadata: ["error": "\(error)"])
                ready = false
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Entries read at once.
    static let batch = 200

    /// Applies a batch of reports, then refreshes each member whose sockets changed, and asks
    /// each gateway presence had dropped but heard a lease from to list its sockets again.
    package func handle(_ entries: [StreamEntry]) async throws {
        let now = clock.now()
        let (affected, unknown) = try await store.write { db -> (Set<String>, Set<String>) in
            var affected = Set<String>()
            var unknown = Set<String>()
            for entry in entries {
                guard let report = ConnectionReport(fields: entry.fields) else { continue }
                switch report {
                case .open(let gateway, let socket, let user):
                    try await PresenceRepository.open(gateway: gateway, socket: socket, user: user, at: now, in: db)
                    affected.insert(user)
                case .close(let gateway, let socket, let user):
                    try await PresenceRepository.close(gateway: gateway, socket: socket, user: user, at: now, in: db)
                    affected.insert(user)
                case .lease(let gateway, let until):
                    if try await !PresenceRepository.renewKnown(gateway: gateway, until: Timestamp(millis: until), in: db) { unknown.insert(gateway) }
                case .sync(let gateway, let until, let sockets):
                    try await PresenceRepository.renew(gateway: gateway, until: Timestamp(millis: until), in: db)
                    unknown.remove(gateway)
                    affected.formUnion(try await PresenceRepository.replaceSockets(gateway: gateway, with: sockets, at: now, in: db))
                case .down(let gateway):
                    affected.formUnion(try await PresenceRepository.drop(gateway: gateway, in: db))
                }
            }
            return (affected, unknown)
        }
        for user in affected.sorted() { try await presence.refresh(user) }
        for gateway in unknown.sorted() where asked.shouldAsk(gateway, at: now) {
            // Lost with the gateway's subscription, the request is made again at a later lease.
            logger.info("presence: a gateway dropped for a lapsed lease renewed it; asking it to list its sockets", metadata: ["gateway": "\(gateway)"])
            try? await bus.publish(ByteBuffer(string: gateway), to: ConnectionReport.resyncChannel)
        }
    }
}

/// Which gateways were asked to list their sockets, so a gateway whose leases wait in a long
/// backlog is asked once rather than at each of them.
final class ResyncRequests: Sendable {
    /// When each gateway was last asked.
    private let asked = Mutex<[String: Int64]>([:])
    /// A gateway is asked again after this long without its answer.
    static let askAgainAfter: Int64 = 30_000

    /// Whether to ask `gateway` now (not asked within `askAgainAfter`).
    func shouldAsk(_ gateway: String, at now: Timestamp) -> Bool {
        asked.withLock { asked in
            asked = asked.filter { now.millis - $0.value < Self.askAgainAfter }
            guard asked[gateway] == nil else { return false }
            asked[gateway] = now.millis
            return true
        }
    }
}

/// How far one replica's consumer has read the reports: when it is behind, a lease renewal may
/// be waiting unread in the stream, and the sweeper must judge leases by the time its reading
/// reached, not by the clock (otherwise a busy stream makes presence drop live gateways).
package final class ReportBacklog: Sendable {
    /// The time up to which every report has been read (milliseconds; nil before any read).
    private let seen = Mutex<Int64?>(nil)

    /// Leases are never judged earlier than this before the clock: a replica that cannot read
    /// the stream at all (the bus down) still takes a gateway silent this long for gone, and the
    /// gateway lists its sockets again when presence hears from it.
    static let longestLag: Int64 = 5 * 60_000

    package init() {}

    /// After a read begun at `readAt`: `newest` is when the last entry read was added if more
    /// entries may wait (the read was full), nil when the stream was read to its end.
    package func read(_ newest: Int64?, at readAt: Timestamp) {
        seen.withLock { $0 = newest.map { min($0, readAt.millis) } ?? readAt.millis }
    }

    /// The time the sweeper may judge leases at: `now`, or earlier (by at most `longestLag`)
    /// while reading lags behind.
    package func judged(at now: Timestamp) -> Timestamp {
        Timestamp(millis: max(now.millis - Self.longestLag, min(now.millis, seen.withLock { $0 } ?? now.millis)))
    }
}
