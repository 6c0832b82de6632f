/// Message plaintext padding (PROTOCOL 6): `u8(contentType) || u32(length) || content || zeros`,
/// filled up to the next bucket (64 bytes, then powers of two), so the ciphertext length tells
/// only the bucket. Unpadding checks that the padding is all zeros and that the bucket is the
/// smallest that holds the content.
public enum MessagePadding {
    public static let minimumBucket = 64
    public static let maximumContent = 64 * 1024

    public static func bucket(for length: Int) -> Int {
        var bucket = minimumBucket
        while bucket < length { bucket *= 2 }
        return bucket
    }

    public static func pad(contentType: UInt8, content: [UInt8]) throws -> [UInt8] {
        guard content.count <= maximumContent else { throw ProtocolError.malformed("content larger than \(maximumContent) bytes") }
        var writer = ByteWriter()
        writer.u8(contentType)
        writer.u32(UInt32(content.count))
        var padded = writer.bytes + content
        padded += [UInt8](repeating: 0, count: bucket(for: padded.count) - padded.count)
        return padded
    }

    public static func unpad(_ padded: [UInt8]) throws -> (contentType: UInt8, content: [UInt8]) {
        guard padded.count == bucket(for: padded.count), padded.count >= 5 else { throw ProtocolError.malformed("not a padded size") }
        var reader = ByteReader(padded)
        let type = try reader.u8()
        let length = Int(try reader.u32())
        guard length <= padded.count - 5 else { throw ProtocolError.malformed("length beyond the padding") }
        // The smallest bucket only: a sender that pads further sends a length signal of its own.
        guard padded.count == bucket(for: 5 + length) else { throw ProtocolError.malformed("padded beyond the smallest bucket") }
        let content = Array(padded[5..<5 + length])
        guard padded[(5 + length)...].allSatisfy({ $0 == 0 }) else { throw ProtocolError.malformed("non-zero padding") }
        return (type, content)
    }
}
