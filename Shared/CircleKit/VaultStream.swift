import CircleCore
import CircleProtocol
import Crypto
import Foundation

/// The vault's file payload (PROTOCOL 9): `u8(1) || salt (16) || chunks`, where the plaintext
/// (the content followed by zeros up to its Padmé length) is cut into 64 KiB chunks, each sealed
/// with AES-256-GCM under `payloadKey = HKDF(fileKey, salt, "circle/v1/vault/payload" || u8(1))`
/// and the nonce `u88(counter) || u8(last)` (age's STREAM). Truncation, reordering, chunks moved
/// between files, data after the final chunk and a final flag mid-stream all fail to open.
public enum VaultStream {
    public static let version = VaultFormat.version
    public static let chunkSize = VaultFormat.chunkSize
    public static let tagSize = VaultFormat.tagSize
    public static let saltSize = VaultFormat.saltSize
    public static let headerSize = VaultFormat.headerSize
    static let payloadLabel = Array("circle/v1/vault/payload".utf8)

    public static func padme(_ length: UInt64) -> UInt64 { VaultFormat.padme(length) }
    public static func chunkCount(paddedLength: UInt64) -> UInt64 { VaultFormat.chunkCount(paddedLength: paddedLength) }
    public static func ciphertextLength(size: UInt64) -> UInt64 { VaultFormat.ciphertextLength(size: size) }
    public static func isValidLength(_ length: UInt64) -> Bool { VaultFormat.isValidLength(length) }

    static func payloadKey(fileKey: [UInt8], salt: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: fileKey), salt: salt,
                               info: payloadLabel + [version], outputByteCount: 32)
    }

    static func nonce(_ counter: UInt64, last: Bool) -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 3)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((counter >> UInt64(shift)) & 0xff)) }
        bytes.append(last ? 1 : 0)
        return try! AES.GCM.Nonce(data: bytes)
    }
}

/// Seals a file's content as it is read: give it the content in pieces of any size, then call
/// `finish`; it never holds more than one chunk.
public struct VaultStreamSealer: Sendable {
    public let header: [UInt8]
    let key: SymmetricKey
    let size: UInt64
    let paddedLength: UInt64
    let chunks: UInt64
    var pending: [UInt8] = []
    var consumed: UInt64 = 0
    var counter: UInt64 = 0

    public init(fileKey: [UInt8], size: UInt64, salt: [UInt8] = SecureRandom.bytes(VaultStream.saltSize)) {
        precondition(fileKey.count == 32 && salt.count == VaultStream.saltSize)
        self.header = [VaultStream.version] + salt
        self.key = VaultStream.payloadKey(fileKey: fileKey, salt: salt)
        self.size = size
        self.paddedLength = VaultStream.padme(size)
        self.chunks = VaultStream.chunkCount(paddedLength: paddedLength)
        pending.reserveCapacity(VaultStream.chunkSize)
    }

    /// The sealed chunks completed by this piece (possibly none).
    public mutating func seal(_ content: some Collection<UInt8>) throws -> [UInt8] {
        consumed += UInt64(content.count)
        guard consumed <= size else { throw ProtocolError.malformed("more content than the announced size") }
        var out: [UInt8] = []
        var rest = content[...]
        while !rest.isEmpty {
            let take = min(rest.count, VaultStream.chunkSize - pending.count)
            pending += rest.prefix(take)
            rest = rest.dropFirst(take)
            // A full chunk is sealed only once more content follows, so the last one gets the flag.
            if pending.count == VaultStream.chunkSize, counter + 1 < chunks { out += try sealPending(last: false) }
        }
        return out
    }

    /// The remaining chunks: the content's tail, the zeros of the padding, the final flag.
    public mutating func finish() throws -> [UInt8] {
        guard consumed == size else { throw ProtocolError.malformed("\(size - consumed) bytes of content missing") }
        var out: [UInt8] = []
        var remainingPadding = paddedLength - size
        repeat {
            let take = Int(min(remainingPadding, UInt64(VaultStream.chunkSize - pending.count)))
            pending += [UInt8](repeating: 0, count: take)
            remainingPadding -= UInt64(take)
            let last = counter + 1 == chunks
            if last || pending.count == VaultStream.chunkSize { out += try sealPending(last: last) }
        } while counter < chunks
        return out
    }

    private mutating func sealPending(last: Bool) throws -> [UInt8] {
        let box = try AES.GCM.seal(pending, using: key, nonce: VaultStream.nonce(counter, last: last))
        counter += 1
        pending.removeAll(keepingCapacity: true)
        return Array(box.ciphertext) + Array(box.tag)
    }
}

/// Opens a payload as it arrives, in pieces of any size, knowing the true size from the file's
/// metadata. It returns only verified content, checks the padding zeros, and `finish` fails
/// unless the final chunk verified with nothing after it: until then a download is incomplete.
public struct VaultStreamOpener: Sendable {
    let fileKey: [UInt8]
    let size: UInt64
    let paddedLength: UInt64
    let chunks: UInt64
    var key: SymmetricKey?
    var buffer: [UInt8] = []
    var counter: UInt64 = 0
    var produced: UInt64 = 0
    public private(set) var isComplete = false

    public init(fileKey: [UInt8], size: UInt64) {
        self.fileKey = fileKey
        self.size = size
        self.paddedLength = VaultStream.padme(size)
        self.chunks = VaultStream.chunkCount(paddedLength: paddedLength)
    }

    /// Plaintext content made available by this piece.
    public mutating func open(_ bytes: some Collection<UInt8>) throws -> [UInt8] {
        guard !isComplete || bytes.isEmpty else { throw ProtocolError.malformed("data after the final chunk") }
        buffer += bytes
        var out: [UInt8] = []
        if key == nil {
            guard buffer.count >= VaultStream.headerSize else { return out }
            guard buffer[0] == VaultStream.version else { throw ProtocolError.malformed("unknown vault format version \(buffer[0])") }
            key = VaultStream.payloadKey(fileKey: fileKey, salt: Array(buffer[1..<VaultStream.headerSize]))
            buffer.removeFirst(VaultStream.headerSize)
        }
        while counter < chunks {
            let last = counter + 1 == chunks
            let plainLength = last ? Int(paddedLength - counter * UInt64(VaultStream.chunkSize)) : VaultStream.chunkSize
            let sealedLength = plainLength + VaultStream.tagSize
            guard buffer.count >= sealedLength else { break }
            out += try openChunk(Array(buffer[0..<sealedLength]), last: last)
            buffer.removeFirst(sealedLength)
        }
        if counter == chunks {
            guard buffer.isEmpty else { throw ProtocolError.malformed("data after the final chunk") }
            isComplete = true
        }
        return out
    }

    /// Fails unless the whole stream, final chunk included, verified.
    public func finish() throws {
        guard isComplete else { throw ProtocolError.malformed("the file is incomplete (its final chunk never verified)") }
    }

    private mutating func openChunk(_ sealed: [UInt8], last: Bool) throws -> [UInt8] {
        let plain: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(nonce: VaultStream.nonce(counter, last: last),
                                            ciphertext: sealed.dropLast(VaultStream.tagSize), tag: sealed.suffix(VaultStream.tagSize))
            plain = Array(try AES.GCM.open(box, using: key!))
        } catch {
            throw ProtocolError.decryptionFailed
        }
        counter += 1
        // Content first, then the padding zeros, which are checked and dropped.
        let start = (counter - 1) * UInt64(VaultStream.chunkSize)
        let contentInChunk = Int(min(UInt64(plain.count), size > start ? size - start : 0))
        guard plain[contentInChunk...].allSatisfy({ $0 == 0 }) else { throw ProtocolError.malformed("non-zero padding") }
        produced += UInt64(contentInChunk)
        return Array(plain[0..<contentInChunk])
    }
}
