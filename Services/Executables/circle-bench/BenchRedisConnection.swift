import CircleBus
import NIOCore
import NIOPosix

/// A load generator's Redis connection whose replies are read by a channel handler on its event
/// loop, like `BenchSocket`: no task per connection and none per reply, and nothing allocated per
/// pub/sub message (`BenchReply.scan`), since the fan-out limit reads 50,000 a second on the same
/// cores as the Redis it measures.
final class BenchRedisConnection: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects; each reply goes to `onReply` and the end of the connection to `onClose` (once),
    /// both on the connection's event loop.
    static func connect(host: String, port: Int, onReply: @escaping @Sendable (BenchReply) -> Void,
                        onClose: @escaping @Sendable () -> Void) async throws -> BenchRedisConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(Reader(onReply: onReply)))
                    try channel.pipeline.syncOperations.addHandler(Closed(onClose: onClose))
                }
            }
            .connect(host: host, port: port).get()
        return BenchRedisConnection(channel: channel)
    }

    /// Sends one command.
    func send(_ arguments: [String]) {
        var buffer = channel.allocator.buffer(capacity: 64)
        RESPEncoder.encode(arguments.map { ByteBuffer(string: $0) }, into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }

    /// Takes whole replies off the bytes read (a reply split across reads waits for the rest).
    private struct Reader: ByteToMessageDecoder {
        typealias InboundOut = Never
        let onReply: @Sendable (BenchReply) -> Void

        mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
            guard let (reply, length) = try buffer.withUnsafeReadableBytes({ try BenchReply.scan($0) }) else { return .needMoreData }
            buffer.moveReaderIndex(forwardBy: length)
            onReply(reply)
            return .continue
        }
    }

    private final class Closed: ChannelInboundHandler {
        typealias InboundIn = Never
        let onClose: @Sendable () -> Void

        init(onClose: @escaping @Sendable () -> Void) { self.onClose = onClose }

        func channelInactive(context: ChannelHandlerContext) {
            onClose()
            context.fireChannelInactive()
        }

        /// A reply that cannot be read ends the connection.
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// What the fan-out limit reads from Redis (RESP 2): a pub/sub message carrying `sent sender`
/// (two decimal numbers), a subscription's confirmation with the connection's channel count, an
/// integer (PUBLISH's receiver count), an error, or anything else.
enum BenchReply: Equatable {
    case message(sent: UInt64, sender: Int)
    case subscribed(count: Int)
    case integer(Int)
    case error
    case other

    /// The first whole reply in `bytes` and its length, or nil if it is not whole yet.
    static func scan(_ bytes: UnsafeRawBufferPointer) throws -> (BenchReply, Int)? {
        var scanner = Scanner(bytes: bytes)
        guard let head = try scanner.element() else { return nil }
        switch head {
        case .integer(let value): return (.integer(value), scanner.index)
        case .error: return (.error, scanner.index)
        case .bulk, .text: return (.other, scanner.index)
        case .array(let count):
            // The replies read here have three elements: the first and the last are kept.
            var first: Scanner.Element?
            var last: Scanner.Element?
            for position in 0..<max(0, count) {
                guard let element = try scanner.element() else { return nil }
                // A nested array is not one of these replies: its elements are skipped whole.
                if case .array(let nested) = element, try !scanner.skip(nested) { return nil }
                if position == 0 { first = element } else if position == 2 { last = element }
            }
            guard count == 3, case .bulk(let kind)? = first else { return (.other, scanner.index) }
            if scanner.equals(kind, "message"), case .bulk(let payload)? = last, let message = scanner.message(payload) {
                return (message, scanner.index)
            }
            if scanner.equals(kind, "subscribe"), case .integer(let subscriptions)? = last { return (.subscribed(count: subscriptions), scanner.index) }
            return (.other, scanner.index)
        }
    }

    private struct Scanner {
        enum Element { case integer(Int), bulk(Range<Int>), array(Int), text, error }

        let bytes: UnsafeRawBufferPointer
        var index = 0

        /// The next element, or nil if it is not whole yet; a malformed one throws.
        mutating func element() throws -> Element? {
            guard index < bytes.count else { return nil }
            let kind = bytes[index]
            guard let line = line(from: index + 1) else { return nil }
            switch kind {
            case UInt8(ascii: ":"), UInt8(ascii: "*"), UInt8(ascii: "$"):
                guard let value = number(line.content) else { throw BenchError("an unreadable Redis reply") }
                if kind == UInt8(ascii: ":") { index = line.next; return .integer(value) }
                if kind == UInt8(ascii: "*") { index = line.next; return .array(value) }
                if value < 0 { index = line.next; return .text }
                guard value + 2 <= bytes.count - line.next else { return nil }
                let end = line.next + value
                guard bytes[end] == 13, bytes[end + 1] == 10 else { throw BenchError("an unreadable Redis reply") }
                index = end + 2
                return .bulk(line.next..<end)
            case UInt8(ascii: "+"):
                index = line.next
                return .text
            case UInt8(ascii: "-"):
                index = line.next
                return .error
            default:
                throw BenchError("an unreadable Redis reply")
            }
        }

        /// Skips `count` elements; false if they are not all whole yet.
        mutating func skip(_ count: Int) throws -> Bool {
            for _ in 0..<max(0, count) {
                guard let element = try element() else { return false }
                if case .array(let nested) = element, try !skip(nested) { return false }
            }
            return true
        }

        func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
            UnsafeRawBufferPointer(rebasing: bytes[range]).elementsEqual(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }

        /// `sent sender`.
        func message(_ range: Range<Int>) -> BenchReply? {
            guard let space = bytes[range].firstIndex(of: UInt8(ascii: " ")),
                  let sent = number(range.lowerBound..<space).flatMap({ UInt64(exactly: $0) }), let sender = number(space + 1..<range.upperBound) else { return nil }
            return .message(sent: sent, sender: sender)
        }

        /// The line starting at `start`: its content and where the next begins.
        private func line(from start: Int) -> (content: Range<Int>, next: Int)? {
            var end = start
            while end + 1 < bytes.count {
                if bytes[end] == 13, bytes[end + 1] == 10 { return (start..<end, end + 2) }
                end += 1
            }
            return nil
        }

        private func number(_ range: Range<Int>) -> Int? {
            var value = 0
            var negative = false
            for (offset, byte) in bytes[range].enumerated() {
                if offset == 0, byte == UInt8(ascii: "-") { negative = true; continue }
                guard byte >= 48, byte <= 57 else { return nil }
                let (times, overflow) = value.multipliedReportingOverflow(by: 10)
                let (sum, carried) = times.addingReportingOverflow(Int(byte - 48))
                guard !overflow, !carried else { return nil }
                value = sum
            }
            return range.isEmpty || (negative && range.count == 1) ? nil : (negative ? -value : value)
        }
    }
}
