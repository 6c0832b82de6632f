import CircleCore
import CircleStore
import Foundation
import NIOCore

/// What travels on a user's bus channel (`user.{id}`), made by the publisher and read by every
/// gateway holding a socket of that user: the little the gateway acts on (`Routing`), and the
/// frame the client receives (`body`, the JSON of `{"seq"?, "type", "data"}`), which the gateway
/// forwards without reading it.
///
/// On the bus it is the routing as one line of JSON, a newline, then the body.
public struct EventFrame: Sendable, Equatable {
    /// What the gateway needs to deliver the frame.
    public struct Routing: Codable, Sendable, Equatable {
        /// The user's sequence number of a stored event; nil for live-only frames (messages,
        /// presence, typing), which are read again from their own tables after a gap.
        public var seq: Int64?
        /// Sockets of this session close (4001) right after this frame: its revocation.
        public var endsSession: String?
        /// Only sockets that said they are this device (a call signal's recipient) get the frame.
        public var device: String?

        public init(seq: Int64? = nil, endsSession: String? = nil, device: String? = nil) {
            self.seq = seq
            self.endsSession = endsSession
            self.device = device
        }
    }

    /// The frame a client receives.
    public struct Body<Payload: Encodable & Sendable>: Encodable, Sendable {
        public let seq: Int64?
        public let type: String
        public let data: Payload
    }

    public let routing: Routing
    public let body: ByteBuffer

    public init(routing: Routing, body: ByteBuffer) {
        self.routing = routing
        self.body = body
    }

    /// A frame of `type` carrying `data`, with the user's sequence number for a stored event.
    public init<Payload: Encodable & Sendable>(seq: Int64? = nil, type: EventType, data: Payload, endsSession: String? = nil, device: String? = nil) throws {
        self.routing = Routing(seq: seq, endsSession: endsSession, device: device)
        self.body = ByteBuffer(bytes: try Self.encoder.encode(Body(seq: seq, type: type.rawValue, data: data)))
    }

    /// The body as text, for the socket.
    public var text: String { String(buffer: body) }

    /// The bus encoding.
    public func encoded() -> ByteBuffer {
        // The routing has three optional fields; encoding it cannot fail.
        var buffer = ByteBuffer(bytes: (try? Self.encoder.encode(routing)) ?? Data("{}".utf8))
        buffer.writeInteger(UInt8(ascii: "\n"))
        var body = self.body
        buffer.writeBuffer(&body)
        return buffer
    }

    /// Reads the bus encoding.
    public init(decoding buffer: ByteBuffer) throws {
        let (head, body) = try Self.splitFirstLine(buffer)
        do {
            self.routing = try JSONDecoder().decode(Routing.self, from: Data(head.readableBytesView))
        } catch {
            throw EventFrameError.malformed
        }
        self.body = body
    }

    /// The bytes before the first newline and those after it (the bus encodings are a line of
    /// routing, then what follows).
    static func splitFirstLine(_ buffer: ByteBuffer) throws -> (line: ByteBuffer, rest: ByteBuffer) {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { throw EventFrameError.malformed }
        let split = newline - buffer.readerIndex
        guard let line = buffer.getSlice(at: buffer.readerIndex, length: split),
              let rest = buffer.getSlice(at: newline + 1, length: buffer.readableBytes - split - 1) else { throw EventFrameError.malformed }
        return (line, rest)
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }
}

/// A bus payload that is not an `EventFrame`.
public enum EventFrameError: Error, Equatable {
    case malformed
}

extension EventFrame {
    /// A stored event as a client reading the log receives it (catch-up, `/sync`).
    public init(stored event: UserEvent) throws {
        try self.init(event, data: event.data)
    }

    /// A stored event as live sockets receive it right after its append: its live form when it
    /// has one (the whole envelope its stored reference names).
    public init(published event: UserEvent) throws {
        try self.init(event, data: event.live ?? event.data)
    }

    private init(_ event: UserEvent, data text: String) throws {
        let data = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        var endsSession: String?
        if event.type == EventType.sessionRevoked.rawValue, case .object(let fields) = data, case .string(let id)? = fields["sessionId"] {
            endsSession = id
        }
        self.routing = Routing(seq: event.seq, endsSession: endsSession)
        self.body = ByteBuffer(bytes: try Self.encoder.encode(Body(seq: event.seq, type: event.type, data: data)))
    }
}
