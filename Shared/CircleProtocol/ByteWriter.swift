/// The canonical binary encoding used inside signed and authenticated data: fixed-width
/// big-endian integers and length-prefixed byte strings, so Swift and JavaScript produce the
/// same bytes (JSON canonicalisation would not).
package struct ByteWriter {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    package mutating func u8(_ value: UInt8) { bytes.append(value) }

    package mutating func u16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xff)] }

    package mutating func u32(_ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    package mutating func u64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((value >> UInt64(shift)) & 0xff)) }
    }

    /// Fixed-length bytes, written as they are.
    package mutating func raw(_ value: [UInt8]) { bytes += value }

    /// `u16(length) || value`; values are at most 65,535 bytes.
    package mutating func field(_ value: [UInt8]) {
        precondition(value.count <= 0xffff, "field too long")
        u16(UInt16(value.count))
        bytes += value
    }
}

/// Reads what `ByteWriter` wrote; every read checks bounds, and `finish` refuses trailing bytes.
package struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw ProtocolError.malformed("truncated") }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    package mutating func u8() throws -> UInt8 { try take(1).first! }

    package mutating func u16() throws -> UInt16 {
        let b = try take(2)
        return UInt16(b[b.startIndex]) << 8 | UInt16(b[b.startIndex + 1])
    }

    package mutating func u32() throws -> UInt32 {
        try take(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// A u64 of the protocol: every one is at most 2^53 - 1 (PROTOCOL 1), the largest integer
    /// both clients represent exactly (a browser's number), so a value one client reads is one
    /// the other reads too.
    package mutating func u64() throws -> UInt64 {
        let value = try take(8).reduce(0) { $0 << 8 | UInt64($1) }
        guard value <= ProtocolBounds.maximumInteger else { throw ProtocolError.malformed("u64 beyond 2^53 - 1") }
        return value
    }

    /// Exactly `count` bytes (a fixed-length value).
    package mutating func raw(_ count: Int) throws -> [UInt8] { Array(try take(count)) }

    package mutating func field(maxLength: Int = 0xffff) throws -> [UInt8] {
        let length = Int(try u16())
        guard length <= maxLength else { throw ProtocolError.malformed("field longer than \(maxLength)") }
        return Array(try take(length))
    }

    /// Requires that every byte was read.
    package func finish() throws {
        guard offset == bytes.count else { throw ProtocolError.malformed("trailing bytes") }
    }
}

/// Bounds on the protocol's integers (PROTOCOL 1).
public enum ProtocolBounds {
    /// 2^53 - 1: the largest u64 any field may hold.
    public static let maximumInteger: UInt64 = (1 << 53) - 1
    /// How far from the server's clock a timestamp it accepts may be (an op's `createdAt`, a
    /// message's `sentAt`): a day either way, for devices whose clocks are off.
    public static let clockWindowMillis: Int64 = 86_400_000
}
