import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Foundation
import Testing

@Suite("Vault format: STREAM chunks, padding, metadata, wraps and links")
struct VaultFormatTests {
    static let fileKey = SecureRandom.bytes(32)
    static let salt = SecureRandom.bytes(16)

    /// Seals `content` fed in pieces of `piece` bytes.
    static func seal(_ content: [UInt8], piece: Int = 10_000, key: [UInt8] = fileKey) throws -> [UInt8] {
        var sealer = VaultStreamSealer(fileKey: key, size: UInt64(content.count), salt: salt)
        var out = sealer.header
        var offset = 0
        while offset < content.count {
            let end = min(content.count, offset + piece)
            out += try sealer.seal(content[offset..<end])
            offset = end
        }
        return out + (try sealer.finish())
    }

    /// Opens `stream` fed in pieces of `piece` bytes; throws unless complete.
    static func open(_ stream: [UInt8], size: Int, piece: Int = 7_777, key: [UInt8] = fileKey) throws -> [UInt8] {
        var opener = VaultStreamOpener(fileKey: key, size: UInt64(size))
        var out: [UInt8] = []
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + piece)
            out += try opener.open(stream[offset..<end])
            offset = end
        }
        try opener.finish()
        return out
    }

    /// A stream built chunk by chunk from the spec (PROTOCOL 9.1), to make malformed ones.
    static func craft(_ chunks: [(counter: UInt64, last: Bool, plain: [UInt8])], version: UInt8 = 1, salt: [UInt8] = salt) throws -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: fileKey), salt: salt,
                                         info: Array("circle/v1/vault/payload".utf8) + [1], outputByteCount: 32)
        var out = [version] + salt
        for chunk in chunks {
            var nonce = [UInt8](repeating: 0, count: 3)
            for shift in stride(from: 56, through: 0, by: -8) { nonce.append(UInt8((chunk.counter >> UInt64(shift)) & 0xff)) }
            nonce.append(chunk.last ? 1 : 0)
            let box = try AES.GCM.seal(chunk.plain, using: key, nonce: AES.GCM.Nonce(data: nonce))
            out += Array(box.ciphertext) + Array(box.tag)
        }
        return out
    }

    @Test("Padmé: never smaller, at most 12% larger, idempotent on its outputs")
    func padme() {
        #expect(VaultStream.padme(0) == 0 && VaultStream.padme(1) == 1)
        for length: UInt64 in [2, 3, 100, 1000, 65_535, 65_536, 65_537, 1_000_000, 1 << 30, (1 << 32) + 12_345] {
            let padded = VaultStream.padme(length)
            #expect(padded >= length && Double(padded) <= Double(length) * 1.12 + 1, "\(length)")
            #expect(VaultStream.padme(padded) == padded, "\(length)")
        }
        #expect(VaultStream.padme(100_000) == 100_352)
    }

    @Test("round trip at every chunk boundary, fed in pieces of any size, with the length the server expects",
          arguments: [0, 1, 100, 65_535, 65_536, 65_537, 131_072, 200_001])
    func roundTrip(size: Int) throws {
        let content = SecureRandom.bytes(size)
        let stream = try Self.seal(content)
        #expect(UInt64(stream.count) == VaultStream.ciphertextLength(size: UInt64(size)))
        #expect(VaultStream.isValidLength(UInt64(stream.count)))
        #expect(try Self.open(stream, size: size) == content)
        #expect(try Self.open(stream, size: size, piece: 1 << 20) == content)
        #expect(try Self.seal(content, piece: 65_536) == stream, "the piece size does not change the bytes")
    }

    @Test("the server's length check accepts exactly the lengths of real streams")
    func lengths() {
        var valid = Set<UInt64>()
        for size in stride(from: UInt64(0), through: 300_000, by: 997) { valid.insert(VaultStream.ciphertextLength(size: size)) }
        for length in valid { #expect(VaultStream.isValidLength(length)) }
        #expect(!VaultStream.isValidLength(0) && !VaultStream.isValidLength(16) && !VaultStream.isValidLength(32))
        #expect(!VaultStream.isValidLength(17 + 65_536 + 16 + 5), "a second chunk shorter than its tag")
        #expect(!VaultStream.isValidLength(17 + 9 + 16), "Padmé never pads to 9 bytes")
        // Exactly the lengths of real streams, every length up to 70,000.
        let real = Set((0...UInt64(70_000)).map(VaultStream.ciphertextLength(size:)))
        let accepted = (0...UInt64(70_000)).filter(VaultStream.isValidLength)
        #expect(accepted == real.filter { $0 <= 70_000 }.sorted())
    }

    @Test("tampered, truncated, reordered, appended, moved or re-flagged chunks never open as complete")
    func tampering() throws {
        let size = 150_000
        let content = SecureRandom.bytes(size)
        let stream = try Self.seal(content)
        let full = 65_536 + 16
        // A flipped bit anywhere after the header.
        for position in [17, 17 + 100, 17 + full + 5, stream.count - 1] {
            var bad = stream
            bad[position] ^= 0x01
            #expect(throws: (any Error).self) { try Self.open(bad, size: size) }
        }
        // Truncated: at a chunk boundary (no final chunk) and mid-chunk.
        #expect(throws: (any Error).self) { try Self.open(Array(stream[0..<(17 + full)]), size: size) }
        #expect(throws: (any Error).self) { try Self.open(Array(stream.dropLast(1)), size: size) }
        // Reordered: the first two chunks swapped.
        let reordered = Array(stream[0..<17]) + Array(stream[(17 + full)..<(17 + 2 * full)]) + Array(stream[17..<(17 + full)]) + Array(stream[(17 + 2 * full)...])
        #expect(throws: (any Error).self) { try Self.open(reordered, size: size) }
        // Appended bytes after the final chunk.
        #expect(throws: (any Error).self) { try Self.open(stream + [0], size: size) }
        #expect(throws: (any Error).self) { try Self.open(stream + Array(stream[17..<(17 + full)]), size: size) }
        // A chunk moved from another file with the same key but another salt.
        let other = try Self.craft([(0, false, Array(content[0..<65_536]))], salt: SecureRandom.bytes(16))
        let moved = Array(stream[0..<17]) + Array(other[17...]) + Array(stream[(17 + full)...])
        #expect(throws: (any Error).self) { try Self.open(moved, size: size) }
        // An altered salt or version.
        var salted = stream
        salted[3] ^= 0x80
        #expect(throws: (any Error).self) { try Self.open(salted, size: size) }
        var versioned = stream
        versioned[0] = 2
        #expect(throws: (any Error).self) { try Self.open(versioned, size: size) }
        // The wrong key.
        #expect(throws: (any Error).self) { try Self.open(stream, size: size, key: SecureRandom.bytes(32)) }
    }

    @Test("a final flag mid-stream, an empty final chunk on a non-empty file, and non-zero padding are refused")
    func flags() throws {
        let chunk = SecureRandom.bytes(65_536)
        // Two-chunk file whose first chunk claims to be the last.
        let early = try Self.craft([(0, true, chunk), (1, true, [UInt8](repeating: 7, count: 10))])
        #expect(throws: (any Error).self) { try Self.open(early, size: 65_546) }
        // The first chunk alone, flagged final, presented as the whole of a longer file.
        #expect(throws: (any Error).self) { try Self.open(try Self.craft([(0, true, chunk)]), size: 65_546) }
        // A non-empty file ending in an empty final chunk.
        let emptyFinal = try Self.craft([(0, false, chunk), (1, true, [])])
        #expect(throws: (any Error).self) { try Self.open(emptyFinal, size: 65_536) }
        // The padding must be zeros.
        let padded = Int(VaultStream.padme(1000))
        var plain = SecureRandom.bytes(1000) + [UInt8](repeating: 0, count: padded - 1000)
        #expect(try Self.open(try Self.craft([(0, true, plain)]), size: 1000) == Array(plain[0..<1000]))
        plain[padded - 1] = 1
        #expect(throws: (any Error).self) { try Self.open(try Self.craft([(0, true, plain)]), size: 1000) }
        // A file shorter than announced, with a valid final chunk.
        #expect(throws: (any Error).self) { try Self.open(try Self.craft([(0, true, SecureRandom.bytes(10))]), size: 1000) }
        // The empty file is one empty final chunk.
        #expect(try Self.open(try Self.craft([(0, true, [])]), size: 0) == [])
    }

    @Test("the sealer refuses more or less content than announced")
    func sealerBounds() throws {
        var sealer = VaultStreamSealer(fileKey: Self.fileKey, size: 10)
        #expect(throws: (any Error).self) { _ = try sealer.seal([UInt8](repeating: 1, count: 11)) }
        var short = VaultStreamSealer(fileKey: Self.fileKey, size: 10)
        _ = try short.seal([1, 2, 3])
        #expect(throws: (any Error).self) { _ = try short.finish() }
    }

    @Test("metadata is padded, bound to its file id, and refuses other keys")
    func metadata() throws {
        let fileId = SecureRandom.bytes(16)
        let meta = VaultMetadata(name: "Passeport scanné.pdf", type: "application/pdf", size: 1_234_567)
        let sealed = try meta.seal(fileKey: Self.fileKey, fileId: fileId)
        #expect(sealed.count == 12 + 256 + 16)
        #expect(try VaultMetadata.open(sealed, fileKey: Self.fileKey, fileId: fileId) == meta)
        #expect(throws: (any Error).self) { try VaultMetadata.open(sealed, fileKey: Self.fileKey, fileId: SecureRandom.bytes(16)) }
        #expect(throws: (any Error).self) { try VaultMetadata.open(sealed, fileKey: SecureRandom.bytes(32), fileId: fileId) }
        #expect(throws: (any Error).self) { try VaultMetadata(name: "", type: "", size: 0).seal(fileKey: Self.fileKey, fileId: fileId) }
        let long = VaultMetadata(name: String(repeating: "n", count: 600), type: "text/plain", size: 1)
        #expect(try long.seal(fileKey: Self.fileKey, fileId: fileId).count == 12 + 768 + 16)
    }

    @Test("the owner's wrap opens only for that owner and file; a link's only with its key and password")
    func wraps() throws {
        let vmk = SecureRandom.bytes(32), fileId = SecureRandom.bytes(16)
        let owner = UUID().uuidString.lowercased()
        let wrapped = try VaultKeys.wrap(fileKey: Self.fileKey, owner: owner, fileId: fileId, vaultMasterKey: vmk)
        #expect(try VaultKeys.unwrap(wrapped, owner: owner, fileId: fileId, vaultMasterKey: vmk) == Self.fileKey)
        #expect(throws: (any Error).self) { try VaultKeys.unwrap(wrapped, owner: UUID().uuidString.lowercased(), fileId: fileId, vaultMasterKey: vmk) }
        #expect(throws: (any Error).self) { try VaultKeys.unwrap(wrapped, owner: owner, fileId: SecureRandom.bytes(16), vaultMasterKey: vmk) }

        let linkId = SecureRandom.bytes(16), linkKey = SecureRandom.bytes(32), linkSalt = SecureRandom.bytes(16)
        let open = try VaultKeys.linkSecrets(linkKey: linkKey, password: nil, salt: nil)
        let openWrap = try VaultKeys.wrapForLink(fileKey: Self.fileKey, linkId: linkId, secrets: open)
        #expect(try VaultKeys.unwrapFromLink(openWrap, linkId: linkId, secrets: open) == Self.fileKey)
        #expect(throws: (any Error).self) { try VaultKeys.unwrapFromLink(openWrap, linkId: SecureRandom.bytes(16), secrets: open) }

        let guarded = try VaultKeys.linkSecrets(linkKey: linkKey, password: "pässwörd", salt: linkSalt)
        #expect(guarded.access != open.access && guarded.unwrapKey != open.unwrapKey)
        let nfd = try VaultKeys.linkSecrets(linkKey: linkKey, password: "pa\u{0308}sswo\u{0308}rd", salt: linkSalt)
        #expect(nfd.access == guarded.access, "the password is NFC-normalised")
        let guardedWrap = try VaultKeys.wrapForLink(fileKey: Self.fileKey, linkId: linkId, secrets: guarded)
        let wrongPassword = try VaultKeys.linkSecrets(linkKey: linkKey, password: "password", salt: linkSalt)
        #expect(throws: (any Error).self) { try VaultKeys.unwrapFromLink(guardedWrap, linkId: linkId, secrets: wrongPassword) }
        #expect(throws: (any Error).self) { try VaultKeys.unwrapFromLink(guardedWrap, linkId: linkId, secrets: open) }
        #expect(throws: (any Error).self) { try VaultKeys.linkSecrets(linkKey: linkKey, password: "x", salt: linkSalt, iterations: 1000) }
    }
}
