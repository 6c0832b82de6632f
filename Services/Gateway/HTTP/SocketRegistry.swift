import AsyncAlgorithms
import CircleBus
import CircleCore
import CircleHTTP
import CircleStore
import GatewayCore
import GatewayStore
import Logging
import Metrics
import NIOCore
import ServiceLifecycle

/// Why the server ends a socket.
enum SocketSignal: Sendable {
    /// The socket's session was revoked: close with 4001.
    case revoked
    /// The server is stopping: close with 1012 so the client reconnects elsewhere.
    case shutdown
    /// The client sent nothing, not even a pong, for longer than the silence limit: close with 1001.
    case silent
    /// Newer sockets of the same session or member took its place (`SocketRegistry.Caps`): close with 4009.
    case replaced
}

/// Every live realtime socket of this replica.
///
/// A revoked session's sockets close when their own `session.revoked` event reaches them, and
/// at once when the revocation is announced on the bus (`sessions.revoked`, which destruction
/// uses too). As a backstop for sessions ended without either (deleted, or an announcement lost
/// with the bus), it checks every socket's session against the database once per `checkPeriod`,
/// a slice each second, so the database sees a small steady query instead of one for every
/// socket every second. On a timer of its own, it pings the sockets whose last ping is a ping
/// interval old and tells the ones silent for longer than the silence limit to close. On
/// shutdown it tells every socket to close with 1012 and waits for them, before the HTTP server
/// itself stops.
actor SocketRegistry: Service {
    private struct Entry {
        let identity: Identity
        let keepalive: SocketKeepalive?
        let signal: @Sendable (SocketSignal) -> Void
    }

    /// Sockets one session (a device: its tabs) and one member may hold at once on this
    /// replica; a new one past either closes the oldest, so a client reconnecting before its old
    /// socket is noticed gone is never refused.
    struct Caps: Sendable {
        var perSession = 8
        var perUser = 32
    }

    /// How often sockets are pinged, and how long one may stay silent.
    struct Keepalive: Sendable {
        var pingInterval: Duration = .seconds(25)
        var silenceLimit: Duration = .seconds(60)
    }

    private let store: any DatabaseStore
    private let logger: Logger
    /// Where revocations are announced (none in tests that drive the checks themselves).
    private let bus: (any MessageBus)?
    /// How many one-second slices a full pass of the session check takes.
    private let checkSlices: Int
    private var sockets: [UInt64: Entry] = [:]
    /// The open (not replaced) sockets of each session and each member, for the caps: a
    /// registration looks at its own session's and member's sockets only, not at every socket of
    /// the replica (which made connecting N sockets cost N² comparisons).
    private var openBySession: [String: Set<UInt64>] = [:]
    private var openByUser: [String: Set<UInt64>] = [:]
    private var nextID: UInt64 = 0
    private var draining = false
    private let gauge = Gauge(label: "circle_gateway_sockets")
    private let keepalive: Keepalive
    private let caps: Caps
    /// Tells presence which sockets are open here.
    private let reporter: ConnectionReporter?

    init(store: any DatabaseStore, logger: Logger, bus: (any MessageBus)? = nil, checkPeriod: Duration = .seconds(30),
         keepalive: Keepalive = Keepalive(), caps: Caps = Caps(), reporter: ConnectionReporter? = nil) {
        self.store = store
        self.logger = logger
        self.bus = bus
        self.checkSlices = max(1, Int(checkPeriod.components.seconds))
        self.keepalive = keepalive
        self.caps = caps
        self.reporter = reporter
    }

    var count: Int { sockets.count }

    /// Registers a socket and how to tell it to close; nil when the server is already stopping.
    func register(
        _ identity: Identity, keepalive: SocketKeepalive? = nil, signal: @escaping @Sendable (SocketSignal) -> Void
    ) async -> UInt64? {
        guard !draining else { return nil }
        replaceOldest(of: openBySession[identity.sessionId], keeping: caps.perSession - 1)
        replaceOldest(of: openByUser[identity.userId], keeping: caps.perUser - 1)
        nextID += 1
        let id = nextID
        sockets[id] = Entry(identity: identity, keepalive: keepalive, signal: signal)
        openBySession[identity.sessionId, default: []].insert(id)
        openByUser[identity.userId, default: []].insert(id)
        gauge.record(sockets.count)
        await reporter?.opened(socket: String(id), user: identity.userId)
        return id
    }

    /// Tells the oldest of `open` (ids grow with registration) to close until `keeping` of them
    /// are left.
    private func replaceOldest(of open: Set<UInt64>?, keeping: Int) {
        guard let open, open.count > keeping else { return }
        for id in open.sorted().prefix(open.count - keeping) {
            // Told to close, it stays listed until it has closed, but no longer counts.
            guard let entry = sockets[id] else { continue }
            forget(id, entry.identity)
            entry.signal(.replaced)
            Counter(label: "circle_gateway_sockets_replaced_total").increment()
        }
    }

    /// Takes a socket out of the open sockets its session and member are counted by.
    private func forget(_ id: UInt64, _ identity: Identity) {
        openBySession[identity.sessionId]?.remove(id)
        if openBySession[identity.sessionId]?.isEmpty == true { openBySession[identity.sessionId] = nil }
        openByUser[identity.userId]?.remove(id)
        if openByUser[identity.userId]?.isEmpty == true { openByUser[identity.userId] = nil }
    }

    func unregister(_ id: UInt64) async {
        guard let entry = sockets.removeValue(forKey: id) else { return }
        forget(id, entry.identity)
        gauge.record(sockets.count)
        await reporter?.closed(socket: String(id))
    }

    func run() async throws {
        // Two timers: the keepalive never waits for the session check's query, so a slow
        // database delays neither pings nor closing silent sockets.
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in AsyncTimerSequence(interval: .seconds(1), clock: .continuous).cancelOnGracefulShutdown() {
                    await self.keepSocketsAlive()
                }
            }
            group.addTask {
                var tick = 0
                for await _ in AsyncTimerSequence(interval: .seconds(1), clock: .continuous).cancelOnGracefulShutdown() {
                    await self.closeRevoked(slice: tick % self.checkSlices, of: self.checkSlices)
                    tick += 1
                }
            }
            if let bus {
                group.addTask { await self.followRevocations(on: bus) }
            }
        }
        await drain()
    }

    /// Closes the sockets of sessions announced revoked; after a gap in the announcements (the
    /// bus reconnected), checks every socket's session at once.
    private func followRevocations(on bus: any MessageBus) async {
        do {
            let subscription = try await bus.subscribe(to: SessionValidator.revocationChannel)
            for await event in subscription.events.cancelOnGracefulShutdown() {
                switch event {
                case .message(let buffer): closeSessions(SessionValidator.revokedSessionIds(in: buffer))
                case .gap: await closeRevoked()
                }
            }
            await subscription.cancel()
        } catch {
            // Without the announcements the sliced check still closes every revoked session's
            // sockets within a full pass.
            logger.warning("revocation announcements not followed", metadata: ["error": "\(error)"])
        }
    }

    /// Tells the open sockets of these sessions that they are revoked.
    func closeSessions(_ sessionIds: [String]) {
        for sessionId in sessionIds {
            for id in openBySession[sessionId] ?? [] { sockets[id]?.signal(.revoked) }
        }
    }

    /// Pings the sockets that are due and tells the silent ones to close.
    func keepSocketsAlive(at now: NIODeadline = .now()) {
        for entry in sockets.values {
            guard let socket = entry.keepalive else { continue }
            if socket.isSilent(for: keepalive.silenceLimit, answerTime: keepalive.silenceLimit - keepalive.pingInterval, at: now) {
                entry.signal(.silent)
            } else {
                socket.pingIfDue(every: keepalive.pingInterval, at: now)
            }
        }
    }

    /// Closes sockets whose session is no longer live: every socket's, or those of one slice of
    /// the sessions (`slice` of `slices`, by a hash of the session id).
    func closeRevoked(slice: Int = 0, of slices: Int = 1) async {
        let sessionIds = slices <= 1 ? Array(openBySession.keys) : openBySession.keys.filter { UInt(bitPattern: $0.hashValue) % UInt(slices) == UInt(slice) }
        guard !sessionIds.isEmpty else { return }
        do {
            var live: Set<String> = []
            for chunk in stride(from: 0, to: sessionIds.count, by: 500) {
                let ids = Array(sessionIds[chunk..<min(chunk + 500, sessionIds.count)])
                live.formUnion(try await store.read { db in try await AccountRepository.liveSessionIds(among: ids, in: db) })
            }
            // Only sessions that were checked: sockets of other sessions registered while the
            // query ran (this actor is reentrant at the await) are checked later, not taken for revoked.
            closeSessions(sessionIds.filter { !live.contains($0) })
        } catch {
            logger.warning("session check of live sockets failed", metadata: ["error": "\(error)"])
        }
    }

    /// Tells every socket to close with 1012 and waits (bounded) until they have.
    func drain() async {
        draining = true
        let open = sockets.count
        for entry in sockets.values { entry.signal(.shutdown) }
        let deadline = ContinuousClock.now + .seconds(5)
        while !sockets.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if open > 0 { logger.info("closed sockets for shutdown", metadata: ["count": "\(open)", "left": "\(sockets.count)"]) }
    }
}

