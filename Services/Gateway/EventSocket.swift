import CircleBus
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// Close codes of the realtime socket (DESIGN 11).
enum SocketClose {
    static let serverRestart = WebSocketErrorCode(codeNumber: 1012)
    static let unauthorized = WebSocketErrorCode(codeNumber: 4001)
    static let tooSlow = WebSocketErrorCode(codeNumber: 4008)
}

/// One client's realtime socket: authenticate with the first frame, catch up from the event
/// log, then deliver live events, each sequence number exactly once and in order.
struct EventSocket {
    let state: GatewayState
    let bus: any MessageBus
    let registry: SocketRegistry
    let inbound: WebSocketInboundStream
    let outbound: WebSocketOutboundWriter
    let address: String
    let channel: any Channel
    let logger: Logger

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
        case bus(BusEvent)
        case client(WebSocketMessage)
        case clientClosed
        case signal(SocketSignal)
    }

    func run() async throws {
        let messages = IteratorBox(inbound.messages(maxSize: Self.maxInboundMessage).makeAsyncIterator())
        let first = try await Self.withTimeout(Self.authTimeout) { try await messages.next() }
        guard let first else {
            try await outbound.close(SocketClose.unauthorized, reason: "authenticate within 10 seconds")
            return
        }
        guard case .text(let text) = first,
              let auth = try? JSONDecoder().decode(AuthFrame.self, from: Data(text.utf8)), auth.type == "auth" else {
            try await outbound.close(SocketClose.unauthorized, reason: "the first frame must be {\"type\":\"auth\",\"token\":...}")
            return
        }
        if let since = auth.since, since < 0 {
            try await outbound.close(SocketClose.unauthorized, reason: "since must be at least 0")
            return
        }
        guard let identity = try await state.sessions.identity(forToken: auth.token) else {
            try await outbound.close(SocketClose.unauthorized, reason: "unauthorized")
            return
        }
        await state.activity.seen(sessionId: identity.sessionId, ip: address)
        // One queue of inputs for the delivery loop. Producers: the bus and the registry (by
        // callback) and the client reader (one child task): few tasks per idle socket.
        let (inputs, sink) = AsyncStream.makeStream(of: Input.self)
        let queued = QueueDepth()
        let overflowed = OverflowFlag()
        let outbound = self.outbound
        let channel = self.channel
        let logger = self.logger
        /// Queues an input; past the limit the client is too slow: tell it to resume (4008) and,
        /// if even that cannot be written within the grace period, drop the connection. This
        /// runs outside the delivery loop, which may be stuck writing to a client that stopped reading.
        @Sendable func push(_ input: Input) -> Bool {
            if queued.value.add(1, ordering: .relaxed).newValue > Self.queueLimit {
                if overflowed.set() {
                    sink.finish()
                    Task {
                        let closed = try? await Self.withTimeout(Self.closeGrace) { () -> Bool? in
                            try await outbound.close(SocketClose.tooSlow, reason: "too slow: resume with since")
                            return true
                        }
                        if closed == nil { try? await channel.close() }
                        logger.notice("closed a socket that fell behind", metadata: ["closeFrameSent": "\(closed != nil)"])
                    }
                }
                return false
            }
            sink.yield(input)
            return true
        }
        // Subscribe before reading the log, so nothing falls between the two.
        let subscription = try await bus.subscribe(to: EventPublisher.channel(forUser: identity.userId)) { event in
            _ = push(.bus(event))
        }
        defer { Task { await subscription.cancel() } }
        guard let registration = await registry.register(identity, signal: { sink.yield(.signal($0)) }) else {
            try await outbound.close(SocketClose.serverRestart, reason: "server restart")
            return
        }
        defer { Task { await registry.unregister(registration) } }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    while let message = try await messages.next() { guard push(.client(message)) else { return } }
                } catch {}
                sink.yield(.clientClosed)
            }
            defer {
                sink.finish()
                group.cancelAll()
            }
            var delivery = Delivery(userId: identity.userId, sessionId: identity.sessionId, lastSeq: 0)
            guard try await delivery.start(since: auth.since, socket: self) else { return }
            for await input in inputs {
                queued.value.subtract(1, ordering: .relaxed)
                switch input {
                case .bus(.message(let frame)):
                    guard try await delivery.live(frame, socket: self) else { return }
                case .bus(.gap):
                    guard try await delivery.catchUp(socket: self) else { return }
                case .client:
                    continue
                case .clientClosed:
                    return
                case .signal(.revoked):
                    try await outbound.close(SocketClose.unauthorized, reason: "session revoked")
                    return
                case .signal(.shutdown):
                    try await outbound.close(SocketClose.serverRestart, reason: "server restart")
                    return
                }
            }
        }
    }

    func send(_ text: String) async throws {
        try await outbound.write(.text(text))
    }

    /// The delivery state: the last sequence number this socket sent.
    struct Delivery {
        let userId: String
        let sessionId: String
        var lastSeq: Int64

        /// Catches up from `since` (or starts at the head), then says `ready`.
        mutating func start(since: Int64?, socket: EventSocket) async throws -> Bool {
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
        mutating func catchUp(socket: EventSocket, head: Int64? = nil) async throws -> Bool {
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
        mutating func live(_ buffer: ByteBuffer, socket: EventSocket) async throws -> Bool {
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
        mutating func deliver(seq: Int64, frame: String, socket: EventSocket) async throws -> Bool {
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

/// Lets one task at a time advance an iterator from inside `@Sendable` closures.
final class IteratorBox<Iterator: AsyncIteratorProtocol>: @unchecked Sendable where Iterator.Element: Sendable {
    private var iterator: Iterator
    init(_ iterator: Iterator) { self.iterator = iterator }
    func next() async throws -> Iterator.Element? { try await iterator.next() }
}

/// Set once: the first caller of `set()` learns it was first.
final class OverflowFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    func set() -> Bool {
        flag.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    }
}

/// How many inputs a socket has queued and not yet handled.
final class QueueDepth: Sendable {
    let value = Atomic<Int>(0)
}
