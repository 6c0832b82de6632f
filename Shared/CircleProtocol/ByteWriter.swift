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

    package mutating func u64() throws -> UInt64 {
        try take(8).reduce(0) { $0 << 8 | UInt64($1) }
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
