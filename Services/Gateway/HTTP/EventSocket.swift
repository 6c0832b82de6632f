import CircleBus
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import GatewayStore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// Close codes of the realtime socket (ARCHITECTURE 11).
enum SocketClose {
    static let serverRestart = WebSocketErrorCode(codeNumber: 1012)
    static let unauthorized = WebSocketErrorCode(codeNumber: 4001)
    static let tooSlow = WebSocketErrorCode(codeNumber: 4008)
}

/// One client's realtime socket: authenticate with the first frame, catch up from the event
/// log, then deliver live events, each sequence number exactly once and in order. A class: its
/// tasks share one reference instead of copies (an idle socket's memory, see `run`).
final class EventSocket: Sendable {
    let state: GatewayState
    let bus: any MessageBus
    let registry: SocketRegistry
    let inbound: WebSocketInboundStream
    let outbound: WebSocketOutboundWriter
    let address: String
    let channel: any Channel
    let logger: Logger

    init(
        state: GatewayState, bus: any MessageBus, registry: SocketRegistry, inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter, address: String, channel: any Channel, logger: Logger
    ) {
        self.state = state
        self.bus = bus
        self.registry = registry
        self.inbound = inbound
        self.outbound = outbound
        self.address = address
        self.channel = channel
        self.logger = logger
    }

    static let authTimeout: Duration = .seconds(10)
    static let maxInboundMessage = 16 << 10
    /// Frames waiting to be written before the socket counts as too slow.
    static let queueLimit = 2048
    static let catchUpPage = 500
    /// How long a socket that fell behind gets to take its 4008 close frame.
    static let closeGrace: Duration = .seconds(10)

    struct AuthFrame: Decodable {
        let type: String
        let token: String
        let since: Int64?
    }

    enum Input: Sendable {
        /// Catch up from this sequence number (or start at the head), then say `ready`.
        case start(since: Int64?)
        case bus(BusEvent)
        case signal(SocketSignal)
    }

    /// What the first frame established.
    struct Authenticated: Sendable {
        let identity: Identity
        let since: Int64?
    }

    /// The socket's life: this task only reads (and drops) what the client sends until the
    /// socket closes; events are delivered by a task that exists only while there is something
    /// to deliver (`LiveSocket`). A Swift task keeps the memory of its deepest call until it ends
    /// (the task allocator keeps its slabs) and this task lives as long as the socket, so the
    /// one-off deep work (authentication, subscribing, database reads, writes) runs in tasks that
    /// end with it: an idle socket keeps one task with small frames (BENCHMARKS.md, gateway memory).
    @inline(never)
    func run() async throws {
        let messages = IteratorBox(inbound.messages(maxSize: Self.maxInboundMessage).makeAsyncIterator())
        guard let live = try await shortLived({ try await self.open(messages) }) else { return }
        defer { live.close() }
        do {
            while try await messages.next() != nil {}
        } catch {}
    }

    /// Authenticates, subscribes to the user's events, registers with the registry and starts
    /// the catch-up; nil when the socket was closed instead.
    func open(_ messages: IteratorBox<WebSocketInboundMessageStream.AsyncIterator>) async throws -> LiveSocket? {
        guard let authenticated = try await authenticate(messages) else { return nil }
        let identity = authenticated.identity
        let live = LiveSocket(socket: self, delivery: Delivery(userId: identity.userId, sessionId: identity.sessionId))
        do {
            // Subscribe before reading the log, so nothing falls between the two.
            live.subscription = try await bus.subscribe(to: EventPublisher.channel(forUser: identity.userId)) { [live] event in
                live.push(.bus(event))
            }
            let keepalive = SocketKeepalive(channel: channel)
            try await keepalive.watch()
            guard let registration = await registry.register(identity, keepalive: keepalive, signal: { [live] in live.push(.signal($0)) }) else {
                live.close()
                try await outbound.close(SocketClose.serverRestart, reason: "server restart")
                return nil
            }
            live.registration = (registry, registration)
        } catch {
            live.close()
            throw error
        }
        live.start(since: authenticated.since)
        return live
    }

    /// Handles one input; false when the socket is done (its close frame is on its way).
    func handle(_ input: Input, delivery: Delivery) async -> Bool {
        do {
            switch input {
            case .start(let since):
                return try await delivery.start(since: since, socket: self)
            case .bus(.message(let frame)):
                return try await delivery.live(frame, socket: self)
            case .bus(.gap):
                return try await delivery.catchUp(socket: self)
            case .signal(let signal):
                // Dropped after the grace period even if the close frame cannot be written.
                dropAfterGrace()
                switch signal {
                case .revoked: try await outbound.close(SocketClose.unauthorized, reason: "session revoked")
                case .shutdown: try await outbound.close(SocketClose.serverRestart, reason: "server restart")
                case .silent: try await outbound.close(.goingAway, reason: "no answer to pings")
                }
            }
        } catch {
            // A client that left is not worth a warning; anything else is.
            logger.log(level: channel.isActive ? .warning : .debug, "event delivery failed; closing the socket", metadata: ["error": "\(error)"])
            try? await outbound.close(.unexpectedServerError, reason: "server error: reconnect with since")
        }
        return false
    }

    /// After this socket's close frame: the client's close ends the reader; one that never
    /// answers is dropped after the grace period.
    func dropAfterGrace() {
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: .seconds(Int64(Self.closeGrace.components.seconds))) { channel.close(promise: nil) }
    }

    /// Reads the first frame (within the time limit) and checks its token; nil after closing
    /// the socket with 4001 and the reason.
    func authenticate(_ messages: IteratorBox<WebSocketInboundMessageStream.AsyncIterator>) async throws -> Authenticated? {
        // The time limit is a timer of the event loop, not a sleeping task: it costs almost
        // nothing once cancelled (an idle socket's memory).
        let expired = ExpiryFlag()
        let outbound = self.outbound
        let timer = channel.eventLoop.scheduleTask(in: .seconds(Int64(Self.authTimeout.components.seconds))) { [self] in
            expired.value.store(true, ordering: .relaxed)
            dropAfterGrace()
            Task { try? await outbound.close(SocketClose.unauthorized, reason: "authenticate within 10 seconds") }
        }
        let first = try await messages.next()
        timer.cancel()
        // Nil: the client left, or the time ran out and the close frame is on its way.
        guard let first, !expired.value.load(ordering: .relaxed) else { return nil }
        guard case .text(let text) = first,
              let auth = try? JSONDecoder().decode(AuthFrame.self, from: Data(text.utf8)), auth.type == "auth" else {
            try await outbound.close(SocketClose.unauthorized, reason: "the first frame must be {\"type\":\"auth\",\"token\":...}")
            return nil
        }
        if let since = auth.since, since < 0 {
            try await outbound.close(SocketClose.unauthorized, reason: "since must be at least 0")
            return nil
        }
        guard let identity = try await state.sessions.identity(forToken: auth.token) else {
            try await outbound.close(SocketClose.unauthorized, reason: "unauthorized")
            return nil
        }
        await state.activity.seen(sessionId: identity.sessionId, ip: address)
        return Authenticated(identity: identity, since: auth.since)
    }

    /// Runs `body` in a task of its own that ends with it, so the memory of its calls is given
    /// back at once instead of staying with the caller's task (see `run`).
    func shortLived<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        // Started from the event loop's thread, outside any task: creating a task from this one
        // would take memory from this task's allocator, which it keeps (see `run`).
        let promise = channel.eventLoop.makePromise(of: T.self)
        channel.eventLoop.execute { promise.completeWithTask(body) }
        return try await promise.futureResult.get()
    }

    func send(_ text: String) async throws {
        try await outbound.write(.text(text))
    }

    /// The delivery state: the last sequence number this socket sent. Used by one delivery task
    /// at a time (`LiveSocket`).
    final class Delivery: @unchecked Sendable {
        let userId: String
        let sessionId: String
        var lastSeq: Int64 = 0

        init(userId: String, sessionId: String) {
            self.userId = userId
            self.sessionId = sessionId
        }

        /// Catches up from `since` (or starts at the head), then says `ready`.
        func start(since: Int64?, socket: EventSocket) async throws -> Bool {
            let userId = self.userId
            let head = try await socket.state.store.read { db in try await UserEventLog.lastSeq(for: userId, in: db) }
            if let since {
                lastSeq = since
                guard try await catchUp(socket: socket, head: head) else { return false }
            } else {
                lastSeq = head
            }
            try await socket.send("{\"type\":\"ready\",\"data\":{\"lastSeq\":\(lastSeq)}}")
            return true
        }

        /// Sends every stored event after `lastSeq`.
        func catchUp(socket: EventSocket, head: Int64? = nil) async throws -> Bool {
            while true {
                let userId = self.userId
                let since = lastSeq
                let page = try await socket.state.store.read { db in
                    try await UserEventLog.events(for: userId, since: since, limit: EventSocket.catchUpPage, in: db)
                }
                switch page {
                case .resyncRequired:
                    let current = try await socket.state.store.read { db in try await UserEventLog.lastSeq(for: userId, in: db) }
                    try await socket.send("{\"type\":\"resync-required\",\"data\":{\"lastSeq\":\(current)}}")
                    lastSeq = current
                    return true
                case .events(let events, let more):
                    for event in events {
                        guard try await deliver(seq: event.seq, frame: event.frameJSON, socket: socket) else { return false }
                    }
                    if !more { return true }
                }
            }
        }

        /// Handles a frame from the bus: in order, exactly once; a gap is filled from the log.
        func live(_ buffer: ByteBuffer, socket: EventSocket) async throws -> Bool {
            let frame = String(buffer: buffer)
            guard let seq = Self.sequenceNumber(of: frame) else {
                try await socket.send(frame)
                return true
            }
            if seq <= lastSeq { return true }
            if seq == lastSeq + 1 { return try await deliver(seq: seq, frame: frame, socket: socket) }
            return try await catchUp(socket: socket)
        }

        /// Sends one stored event; closes with 4001 after telling the client its own session ended.
        func deliver(seq: Int64, frame: String, socket: EventSocket) async throws -> Bool {
            try await socket.send(frame)
            lastSeq = seq
            if frame.contains("\"type\":\"session.revoked\""), frame.contains("\"sessionId\":\"\(sessionId)\"") {
                try await socket.outbound.close(SocketClose.unauthorized, reason: "session revoked")
                return false
            }
            return true
        }

        /// Reads N from a frame that starts `{"seq":N,`; nil for ephemeral frames.
        static func sequenceNumber(of frame: String) -> Int64? {
            let prefix = "{\"seq\":"
            guard frame.hasPrefix(prefix) else { return nil }
            let digits = frame.utf8.dropFirst(prefix.utf8.count).prefix { $0 >= 48 && $0 <= 57 }
            return Int64(String(decoding: digits, as: UTF8.self))
        }
    }

    /// Runs `body`, or returns nil when it takes longer than `limit`.
    static func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T?) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}

/// An authenticated socket's inputs, delivered in order by a task that runs only while there
/// are inputs, and its registrations. Producers: the bus and the registry, by callback.
final class LiveSocket: Sendable {
    private struct Mailbox {
        /// Small until needed: most sockets are idle.
        var inputs = CircularBuffer<EventSocket.Input>(initialCapacity: 2)
        /// Nothing is delivered before the catch-up is queued (events that arrive between
        /// subscribing and `start` wait behind it).
        var started = false
        var delivering = false
        var finished = false
    }

    /// Above this many slots, an emptied queue is replaced by a small one.
    static let idleCapacity = 64

    private let socket: EventSocket
    private let delivery: EventSocket.Delivery
    private let mailbox = Mutex(Mailbox())
    private let registrations = Mutex<(subscription: BusSubscription?, registration: (SocketRegistry, UInt64)?)>((nil, nil))

    init(socket: EventSocket, delivery: EventSocket.Delivery) {
        self.socket = socket
        self.delivery = delivery
    }

    var subscription: BusSubscription? {
        get { registrations.withLock { $0.subscription } }
        set { registrations.withLock { $0.subscription = newValue } }
    }

    var registration: (SocketRegistry, UInt64)? {
        get { registrations.withLock { $0.registration } }
        set { registrations.withLock { $0.registration = newValue } }
    }

    /// Queues the catch-up, ahead of anything else.
    func start(since: Int64?) {
        enqueue(.start(since: since), first: true)
    }

    /// Queues an input. Past the queue limit the client is too slow: it is told to resume
    /// (4008) and, if even that cannot be written within the grace period, dropped. This runs
    /// outside the delivery, which may be stuck writing to a client that stopped reading.
    func push(_ input: EventSocket.Input) {
        enqueue(input, first: false)
    }

    private func enqueue(_ input: EventSocket.Input, first: Bool) {
        enum Outcome { case queued, deliver, overflowed, dropped }
        let outcome = mailbox.withLock { box -> Outcome in
            if box.finished { return .dropped }
            if box.inputs.count >= EventSocket.queueLimit, case .bus = input {
                box.finished = true
                box.inputs.removeAll()
                return .overflowed
            }
            if first {
                box.inputs.prepend(input)
                box.started = true
            } else {
                box.inputs.append(input)
            }
            if box.delivering || !box.started { return .queued }
            box.delivering = true
            return .deliver
        }
        switch outcome {
        case .queued, .dropped:
            return
        case .deliver:
            Task { await self.deliver() }
        case .overflowed:
            let socket = self.socket
            close()
            Task {
                let closed = try? await EventSocket.withTimeout(EventSocket.closeGrace) { () -> Bool? in
                    try await socket.outbound.close(SocketClose.tooSlow, reason: "too slow: resume with since")
                    return true
                }
                if closed == nil { try? await socket.channel.close() }
                socket.logger.notice("closed a socket that fell behind", metadata: ["closeFrameSent": "\(closed != nil)"])
            }
        }
    }

    /// Delivers queued inputs one at a time until none is left (or the socket is done).
    private func deliver() async {
        while true {
            let next = mailbox.withLock { box -> EventSocket.Input? in
                guard !box.finished, let input = box.inputs.popFirst() else {
                    box.delivering = false
                    // A burst's room is given back once it is delivered (the buffer never shrinks itself).
                    if box.inputs.isEmpty, box.inputs.capacity > Self.idleCapacity { box.inputs = CircularBuffer(initialCapacity: 2) }
                    return nil
                }
                return input
            }
            guard let input = next else { return }
            if await !socket.handle(input, delivery: delivery) {
                close()
                socket.dropAfterGrace()
                return
            }
        }
    }

    /// Stops deliveries and ends the bus subscription and the registration (once).
    func close() {
        mailbox.withLock { box in
            box.finished = true
            box.inputs.removeAll()
        }
        let (subscription, registration) = registrations.withLock { state in
            defer { state = (nil, nil) }
            return (state.subscription, state.registration)
        }
        if subscription != nil || registration != nil {
            Task {
                await subscription?.cancel()
                if let (registry, id) = registration { await registry.unregister(id) }
            }
        }
    }
}

/// Set once the authentication time limit has passed.
final class ExpiryFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// Lets one task at a time advance an iterator from inside `@Sendable` closures.
final class IteratorBox<Iterator: AsyncIteratorProtocol>: @unchecked Sendable where Iterator.Element: Sendable {
    private var iterator: Iterator
    init(_ iterator: Iterator) { self.iterator = iterator }
    func next() async throws -> Iterator.Element? { try await iterator.next() }
}


