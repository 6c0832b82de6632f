import NIOCore

/// A live frame for several members, published once on the bus's `fanout` channel instead of
/// once on each member's channel: every gateway reads `fanout` and hands the frame to its own
/// sockets of the members listed. A presence change to 936 contacts is then one publish and one
/// bus delivery per gateway instead of 936 of each (BENCHMARKS.md, presence and typing).
///
/// Stored events (a sequence number, each member's own) and frames for one member or one
/// device keep the member's channel, where only the gateways holding that member's sockets
/// receive them.
///
/// On the bus: the member ids separated by commas, a newline, then the `EventFrame` encoding.
public struct FanOutFrame: Sendable {
    /// The channel every gateway reads.
    public static let channel = "fanout"
    /// Frames for fewer members than this go to the members' own channels.
    public static let minimumRecipients = 2

    public let frame: EventFrame
    /// The ids, as they arrived (read with `forEachRecipient`).
    private let recipients: ByteBuffer

    /// Whether `userId` can be listed: user ids are UUIDs, and an id holding a separator is not
    /// one (its frame goes to the member's channel instead).
    public static func listable(_ userId: String) -> Bool {
        !userId.isEmpty && !userId.utf8.contains(UInt8(ascii: ",")) && !userId.utf8.contains(UInt8(ascii: "\n"))
    }

    /// The bus encoding of `frame` for `userIds` (each `listable`).
    public static func encode(_ frame: EventFrame, to userIds: [String]) -> ByteBuffer {
        var encodedFrame = frame.encoded()
        var buffer = ByteBuffer()
        buffer.reserveCapacity(userIds.reduce(0) { $0 + $1.utf8.count + 1 } + encodedFrame.readableBytes)
        for (index, userId) in userIds.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeString(userId)
        }
        buffer.writeInteger(UInt8(ascii: "\n"))
        buffer.writeBuffer(&encodedFrame)
        return buffer
    }

    /// Reads the bus encoding.
    public init(decoding buffer: ByteBuffer) throws {
        let (recipients, rest) = try EventFrame.splitFirstLine(buffer)
        self.recipients = recipients
        self.frame = try EventFrame(decoding: rest)
    }

    /// Calls `body` with each listed member id, in order.
    public func forEachRecipient(_ body: (String) -> Void) {
        recipients.withUnsafeReadableBytes { bytes in
            var start = 0
            for index in 0...bytes.count where index == bytes.count || bytes[index] == UInt8(ascii: ",") {
                if index > start { body(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)) }
                start = index + 1
            }
        }
    }

    /// Whether the frame lists `userId`.
    public func lists(_ userId: String) -> Bool {
        var found = false
        forEachRecipient { if $0 == userId { found = true } }
        return found
    }
}
