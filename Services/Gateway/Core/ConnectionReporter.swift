import AsyncAlgorithms
import CircleBus
import CircleCore
import Logging
import NIOCore
import PresenceStore
import ServiceLifecycle

/// Tells the presence service which realtime sockets this gateway replica holds, as entries of
/// the `presence.connections` stream: each socket's open and close, and a lease renewed every
/// third of its length (a replica that dies without saying so stops renewing, and presence takes
/// its sockets for gone once the lease lapses). When a report cannot be written (the bus is
/// down), the next renewal lists every open socket instead, so presence catches up; so does a
/// renewal made after the last lease ran out, and a request from presence (`presence.resync`:
/// it had dropped this replica for gone and then heard its lease).
///
/// A `Service`: reports are written by `run()` in order; on shutdown it says the replica is down.
package actor ConnectionReporter: Service {
    /// This replica's name in the reports (new at every start).
    package let gatewayId: String
    let bus: any MessageBus
    let clock: any WallClock
    let logger: Logger
    let lease: Duration

    /// The most reports the stream keeps (about a day's worth for a busy gateway).
    static let streamLength = 200_000

    private var open: [String: String] = [:]
    private var pending: [ConnectionReport] = []
    private var needsSync = true
    /// Counts the full listings begun: reports queued before one are stale once it is written.
    private var listings = 0
    /// When the last lease written runs out (milliseconds, this replica's clock).
    private var leaseUntil: Int64 = 0
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    package init(bus: any MessageBus, clock: any WallClock, logger: Logger, lease: Duration, gatewayId: String = Base64URL.encode(SecureRandom.bytes(9))) {
        self.bus = bus
        self.clock = clock
        self.logger = logger
        self.lease = lease
        self.gatewayId = gatewayId
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// A member's socket opened here.
    package func opened(socket: String, user: String) {
        open[socket] = user
        pending.append(.open(gateway: gatewayId, socket: socket, user: user))
        wake.yield()
    }

    /// The socket closed.
    package func closed(socket: String) {
        guard let user = open.removeValue(forKey: socket) else { return }
        pending.append(.close(gateway: gatewayId, socket: socket, user: user))
        wake.yield()
    }

    package func run() async throws {
        // Subscribed before the first lease, so a request answering it cannot be missed.
        let requests = try? await bus.subscribe(to: ConnectionReport.resyncChannel)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.answerRequests(requests) }
            group.addTask {
                for await _ in AsyncTimerSequence(interval: self.lease / 3, clock: .continuous).cancelOnGracefulShutdown() {
                    await self.renew()
                }
            }
            group.addTask {
                for await _ in self.wakeups.cancelOnGracefulShutdown() {
                    await self.flush()
                }
            }
            // The first lease (with the empty socket list) at once.
            await self.renew()
        }
        await flush()
        await write([.down(gateway: gatewayId)])
    }

    /// Lists every socket again whenever presence asks this replica to, until shutdown (the
    /// subscription is made again if it ends; a request lost meanwhile is repeated by presence
    /// at the next lease).
    private nonisolated func answerRequests(_ first: BusSubscription?) async {
        var subscription = first
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            guard let current = subscription else {
                subscription = try? await bus.subscribe(to: ConnectionReport.resyncChannel)
                if subscription == nil { try? await Task.sleep(for: .seconds(1)) }
                continue
            }
            for await event in current.events.cancelOnGracefulShutdown() {
                if case .message(let payload) = event, String(buffer: payload) == gatewayId { await resync() }
            }
            await current.cancel()
            subscription = nil
            if !Task.isShuttingDownGracefully { try? await Task.sleep(for: .seconds(1)) }
        }
        await subscription?.cancel()
    }

    /// Presence asked for the full list.
    package func resync() async {
        logger.info("presence asked for this gateway's sockets again")
        needsSync = true
        await renew()
    }

    /// Renews the lease; after a report was lost, or when the last lease written has already
    /// run out (this process or the bus was too slow to renew it in time, and presence may have
    /// taken this replica for gone and dropped its sockets), lists every open socket with it.
    package func renew() async {
        let now = clock.now().millis
        let until = now + lease.milliseconds
        if now >= leaseUntil { needsSync = true }
        if needsSync {
            let sockets = open.map { (socket: $0.key, user: $0.value) }.sorted { $0.socket < $1.socket }
            pending.removeAll()
            listings += 1
            needsSync = !(await write([.sync(gateway: gatewayId, until: until, sockets: sockets)]))
            if !needsSync {
                leaseUntil = until
                // Sockets that opened or closed while the listing was written: their reports wait.
                if !pending.isEmpty { wake.yield() }
            }
        } else {
            await flush()
            if await write([.lease(gateway: gatewayId, until: until)]) { leaseUntil = until }
        }
    }

    /// Writes the queued reports, in order.
    package func flush() async {
        guard !needsSync, !pending.isEmpty else { return }
        let reports = pending
        pending.removeAll()
        if !(await write(reports, unless: listings)) { needsSync = true }
    }

    /// Writes reports one after another; false (and the rest dropped) at the first failure. With
    /// `listing`, stops (true) once a full listing began after it: the actor may run a renewal
    /// between two writes, and the listing already says what the rest would.
    private func write(_ reports: [ConnectionReport], unless listing: Int? = nil) async -> Bool {
        for report in reports {
            if let listing, listing != listings { return true }
            do {
                try await bus.add(to: ConnectionReport.stream, fields: report.fields, maxLength: Self.streamLength)
            } catch {
                logger.warning("presence report not written; the next lease lists every socket", metadata: ["error": "\(error)"])
                return false
            }
        }
        return true
    }
}
