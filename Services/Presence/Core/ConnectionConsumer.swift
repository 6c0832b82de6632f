import AsyncAlgorithms
import CircleBus
import CircleCore
import CircleStore
import Logging
import PresenceStore
import ServiceLifecycle

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
    /// This replica's name in the consumer group.
    let consumer: String
    let claimAfter: Duration
    let block: Duration

    package init(store: any DatabaseStore, bus: any MessageBus, presence: PresenceService, clock: any WallClock, logger: Logger,
                 consumer: String = Base64URL.encode(SecureRandom.bytes(9)), claimAfter: Duration = .seconds(30), block: Duration = .seconds(2)) {
        self.store = store
        self.bus = bus
        self.presence = presence
        self.clock = clock
        self.logger = logger
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
                var entries = try await bus.readGroup(stream: ConnectionReport.stream, group: ConnectionReport.group, consumer: consumer, count: 200, block: block)
                if ContinuousClock.now - lastClaim >= claimAfter / 2 {
                    lastClaim = ContinuousClock.now
                    entries += try await bus.claimIdle(stream: ConnectionReport.stream, group: ConnectionReport.group, consumer: consumer, minIdle: claimAfter, count: 200)
                }
                guard !entries.isEmpty else { continue }
                try await handle(entries)
                try await bus.ack(stream: ConnectionReport.stream, group: ConnectionReport.group, ids: entries.map(\.id))
            } catch is CancellationError {
                break
            } catch {
                logger.warning("presence: reading connection reports failed", metadata: ["error": "\(error)"])
                ready = false
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Applies a batch of reports, then refreshes each member whose sockets changed.
    package func handle(_ entries: [StreamEntry]) async throws {
        let now = clock.now()
        let affected = try await store.write { db -> Set<String> in
            var affected = Set<String>()
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
                    try await PresenceRepository.renew(gateway: gateway, until: Timestamp(millis: until), in: db)
                case .sync(let gateway, let until, let sockets):
                    try await PresenceRepository.renew(gateway: gateway, until: Timestamp(millis: until), in: db)
                    affected.formUnion(try await PresenceRepository.replaceSockets(gateway: gateway, with: sockets, at: now, in: db))
                case .down(let gateway):
                    affected.formUnion(try await PresenceRepository.drop(gateway: gateway, in: db))
                }
            }
            return affected
        }
        for user in affected.sorted() { try await presence.refresh(user) }
    }
}
