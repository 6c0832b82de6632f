import CircleCore
import CircleEvents
import CircleStore
import NIOCore
import Synchronization

/// What one socket has delivered: the user's last sequence number sent, so each stored event
/// goes out exactly once and in order. Used by one delivery at a time (`LiveSocket`).
final class SocketDelivery: Sendable {
    let userId: String
    let sessionId: String
    /// The device the client said it is, for frames addressed to one device (call signals).
    let device: String?
    private let sent = Atomic<Int64>(0)

    /// Stored events read from the log per query.
    static let catchUpPage = 500

    init(userId: String, sessionId: String, device: String?) {
        self.userId = userId
        self.sessionId = sessionId
        self.device = device
    }

    var lastSeq: Int64 { sent.load(ordering: .relaxed) }

    /// Catches up from `since` (or starts at the head), then says `ready`; false when the socket
    /// is done.
    func start(since: Int64?, socket: EventSocket) async throws -> Bool {
        let userId = self.userId
        let head = try await socket.state.store.read { db in try await UserEventLog.lastSeq(for: userId, in: db) }
        if let since {
            sent.store(since, ordering: .relaxed)
            guard try await catchUp(socket: socket) else { return false }
        } else {
            sent.store(head, ordering: .relaxed)
        }
        try await socket.send(EventFrame(type: .ready, data: Ready(lastSeq: lastSeq)))
        return true
    }

    /// After a gap in live delivery (the bus reconnected): the stored events missed, then a
    /// `catch-up` frame, on which the client reads its conversations' new messages.
    func recover(socket: EventSocket) async throws -> Bool {
        guard try await catchUp(socket: socket) else { return false }
        try await socket.send(EventFrame(type: .catchUp, data: Ready(lastSeq: lastSeq)))
        return true
    }

    /// Sends every stored event after the last one sent, page by page.
    func catchUp(socket: EventSocket) async throws -> Bool {
        let userId = self.userId
        while true {
            let since = lastSeq
            let page = try await socket.state.store.read { db in
                try await UserEventLog.events(for: userId, since: since, limit: Self.catchUpPage, in: db)
            }
            switch page {
            case .resyncRequired:
                let current = try await socket.state.store.read { db in try await UserEventLog.lastSeq(for: userId, in: db) }
                try await socket.send(EventFrame(type: .resyncRequired, data: Ready(lastSeq: current)))
                sent.store(current, ordering: .relaxed)
                return true
            case .events(let events, let more):
                for event in events {
                    guard try await deliver(EventFrame(stored: event), socket: socket) else { return false }
                }
                if !more { return true }
            }
        }
    }

    /// A frame from the bus: live-only frames go straight out; stored events in order, exactly
    /// once, a gap filled from the log.
    func live(_ payload: ByteBuffer, socket: EventSocket) async throws -> Bool {
        try await live(EventFrame(decoding: payload), socket: socket)
    }

    /// The same, for a frame already read.
    func live(_ frame: EventFrame, socket: EventSocket) async throws -> Bool {
        guard let seq = frame.routing.seq else {
            // A frame for one device goes to that device's sockets only.
            if let device = frame.routing.device, device != self.device { return true }
            try await socket.send(frame)
            return true
        }
        if seq <= lastSeq { return true }
        if seq == lastSeq + 1 { return try await deliver(frame, socket: socket) }
        return try await catchUp(socket: socket)
    }

    /// Sends one stored event; after the event that revokes this socket's own session, closes
    /// with 4001.
    func deliver(_ frame: EventFrame, socket: EventSocket) async throws -> Bool {
        try await socket.send(frame)
        if let seq = frame.routing.seq { sent.store(seq, ordering: .relaxed) }
        if frame.routing.endsSession == sessionId {
            try await socket.outbound.close(SocketClose.unauthorized, reason: "session revoked")
            return false
        }
        return true
    }

    /// The `data` of `ready`, `catch-up` and `resync-required`.
    struct Ready: Codable, Sendable {
        let lastSeq: Int64
    }
}
