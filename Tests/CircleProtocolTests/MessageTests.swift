import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Foundation
import Testing

@Suite("Messages: chains, headers, padding, sealing")
struct MessageTests {
    static let alice = Curve25519.Signing.PrivateKey()
    static let userId = UUID().uuidString.lowercased()

    static func header(index: UInt32, conv: [UInt8] = [UInt8](repeating: 1, count: 32), epoch: [UInt8] = [UInt8](repeating: 2, count: 32)) -> MessageHeader {
        MessageHeader(convId: conv, epoch: epoch, senderUserId: userId, deviceId: [UInt8](repeating: 3, count: 16),
                      chainIndex: index, messageId: SecureRandom.bytes(16), sentAt: 1_700_000_000_000)
    }

    @Test("a chain's keys are derived on demand by receivers exactly as the sender used them, and end after 1000")
    func chain() throws {
        var sender = SenderChain.fresh()
        let start = sender
        var used: [(key: [UInt8], nonce: [UInt8])] = []
        for expected in 0..<5 as Range<UInt32> {
            let next = sender.next()
            let step = try #require(next)
            #expect(step.index == expected)
            used.append((step.key, step.nonce))
        }
        for (index, pair) in used.enumerated() {
            let derived = try start.key(at: UInt32(index))
            #expect(derived.key == pair.key && derived.nonce == pair.nonce)
        }
        #expect(Set(used.map(\.key)).count == 5)
        #expect(throws: ProtocolError.self) { try start.key(at: 1000) }
        var long = SenderChain(chainKey: start.chainKey, index: 999)
        let last = long.next()
        let beyond = long.next()
        #expect(last != nil)
        #expect(beyond == nil)
    }

    @Test("a ciphertext crafted to open under two chain keys (an invisible salamander) opens only under the committed one")
    func keyCommitment() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Vectors/salamander.json")
        let vector = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: String])
        func bytes(_ name: String) throws -> [UInt8] {
            let text = try #require(vector[name])
            return try #require(Hex.decode(text))
        }
        // The AEAD alone opens under both keys, to two different plaintexts.
        let aead = try bytes("aead")
        for side in ["A", "B"] {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: try bytes("nonce" + side)), ciphertext: aead.dropLast(16), tag: aead.suffix(16))
            #expect(Array(try AES.GCM.open(box, using: SymmetricKey(data: try bytes("key" + side)), authenticating: try bytes("header"))) == (try bytes("padded" + side)))
        }
        // As a signed message, the receiver holding chain key A reads A's text; one holding B refuses it.
        let sealed = MessageSeal.Sealed(header: try bytes("header"), ciphertext: try bytes("ciphertext"), signature: try bytes("signature"))
        let sender = try bytes("identityPublic")
        let opened = try MessageSeal.open(sealed, senderIdentity: sender, chain: SenderChain(chainKey: try bytes("chainKeyA")), replay: ReplayWindow())
        #expect(opened.padded == (try bytes("paddedA")))
        #expect(throws: ProtocolError.refused("the message's key commitment does not match this chain's key")) {
            try MessageSeal.open(sealed, senderIdentity: sender, chain: SenderChain(chainKey: try bytes("chainKeyB")), replay: ReplayWindow())
        }
        // A commitment that matches neither key is refused under both.
        var altered = sealed.ciphertext
        altered[altered.count - 1] ^= 1
        for chain in ["chainKeyA", "chainKeyB"] {
            #expect(throws: ProtocolError.self) {
                try MessageSeal.open(.init(header: sealed.header, ciphertext: altered, signature: sealed.signature), senderIdentity: sender,
                                     chain: SenderChain(chainKey: try bytes(chain)), replay: ReplayWindow())
            }
        }
    }

    @Test("a replay window refuses an index it has seen")
    func replay() {
        var window = ReplayWindow()
        let first = window.insert(5)
        let again = window.insert(5)
        let others = [window.insert(63), window.insert(64), window.insert(999)]
        let outside = window.insert(1000)
        #expect(first && !again)
        #expect(others == [true, true, true])
        #expect(!outside)
        #expect(window.contains(64) && !window.contains(6))
    }

    @Test("padding hides the length inside buckets and refuses tampered padding and a bucket larger than the smallest")
    func padding() throws {
        for length in [0, 1, 58, 59, 60, 500, 4000] {
            let padded = try MessagePadding.pad(contentType: 1, content: [UInt8](repeating: 7, count: length))
            #expect(padded.count == MessagePadding.bucket(for: length + 5))
            #expect(padded.count >= 64 && padded.count.nonzeroBitCount == 1)
            let (type, content) = try MessagePadding.unpad(padded)
            #expect(type == 1 && content.count == length)
        }
        var padded = try MessagePadding.pad(contentType: 1, content: [1, 2, 3])
        padded[padded.count - 1] = 1
        #expect(throws: ProtocolError.self) { try MessagePadding.unpad(padded) }
        #expect(throws: ProtocolError.self) { try MessagePadding.unpad([UInt8](repeating: 0, count: 100)) }
        // Three bytes padded to 128 instead of 64: a larger bucket than the content needs.
        let oversized = try MessagePadding.pad(contentType: 1, content: [1, 2, 3]) + [UInt8](repeating: 0, count: 64)
        #expect(throws: ProtocolError.malformed("padded beyond the smallest bucket")) { try MessagePadding.unpad(oversized) }
    }

    @Test("headers round-trip canonically, and malformed ones are refused")
    func headers() throws {
        let header = Self.header(index: 7)
        #expect(try MessageHeader(bytes: header.bytes) == header)
        #expect(throws: ProtocolError.self) { try MessageHeader(bytes: header.bytes + [0]) }
        #expect(throws: ProtocolError.self) { try MessageHeader(bytes: Array(header.bytes.dropLast())) }
        var wrongVersion = header.bytes
        wrongVersion[0] = 2
        #expect(throws: ProtocolError.self) { try MessageHeader(bytes: wrongVersion) }
        var edit = header
        edit.kind = .edit
        #expect(throws: ProtocolError.self) { try MessageHeader(bytes: edit.bytes) }
        edit.refersTo = SecureRandom.bytes(16)
        #expect(try MessageHeader(bytes: edit.bytes) == edit)
    }

    @Test("every flipped byte, a moved message, a swapped sender, a replay and an absurd index are rejected; the next genuine message still opens")
    func sealing() throws {
        var sender = SenderChain.fresh()
        let start = sender
        let identity = Array(Self.alice.publicKey.rawRepresentation)
        let content = try MessagePadding.pad(contentType: 1, content: Array("hello".utf8))
        let next0 = sender.next()
        let step0 = try #require(next0)
        let first = try MessageSeal.seal(header: Self.header(index: step0.index), padded: content, key: step0.key, nonce: step0.nonce, commitment: step0.commitment, identity: Self.alice)
        var replay = ReplayWindow()
        let opened = try MessageSeal.open(first, senderIdentity: identity, chain: start, replay: replay)
        #expect(try MessagePadding.unpad(opened.padded).content == Array("hello".utf8))
        let recorded = replay.insert(opened.header.chainIndex)
        #expect(recorded)

        func rejects(_ sealed: MessageSeal.Sealed, _ label: String) {
            #expect(throws: ProtocolError.self, "\(label)") { try MessageSeal.open(sealed, senderIdentity: identity, chain: start, replay: ReplayWindow()) }
        }
        for index in first.header.indices {
            var header = first.header
            header[index] ^= 1
            rejects(.init(header: header, ciphertext: first.ciphertext, signature: first.signature), "header byte \(index)")
        }
        for index in first.ciphertext.indices {
            var ciphertext = first.ciphertext
            ciphertext[index] ^= 1
            rejects(.init(header: first.header, ciphertext: ciphertext, signature: first.signature), "ciphertext or tag byte \(index)")
        }
        for index in first.signature.indices {
            var signature = first.signature
            signature[index] ^= 1
            rejects(.init(header: first.header, ciphertext: first.ciphertext, signature: signature), "signature byte \(index)")
        }
        // Moved to another conversation or epoch: the sender would have to re-sign.
        let moved = try MessageSeal.seal(header: Self.header(index: 0, conv: [UInt8](repeating: 9, count: 32)), padded: content, key: step0.key, nonce: step0.nonce, commitment: step0.commitment, identity: Self.alice)
        #expect(throws: ProtocolError.self) {
            try MessageSeal.open(.init(header: moved.header, ciphertext: first.ciphertext, signature: first.signature), senderIdentity: identity, chain: start, replay: ReplayWindow())
        }
        // Signed by someone else, or checked against another identity.
        let mallory = Curve25519.Signing.PrivateKey()
        let forged = try MessageSeal.seal(header: Self.header(index: 0), padded: content, key: step0.key, nonce: step0.nonce, commitment: step0.commitment, identity: mallory)
        rejects(forged, "forged")
        #expect(throws: ProtocolError.self) { try MessageSeal.open(first, senderIdentity: Array(mallory.publicKey.rawRepresentation), chain: start, replay: ReplayWindow()) }
        // A replay.
        #expect(throws: ProtocolError.self) { try MessageSeal.open(first, senderIdentity: identity, chain: start, replay: replay) }
        // An absurd index with a bad signature is refused before any key derivation.
        let absurd = MessageSeal.Sealed(header: Self.header(index: 4_000_000_000).bytes, ciphertext: first.ciphertext, signature: first.signature)
        rejects(absurd, "absurd index")
        // And the chain still works for the next genuine message.
        let next1 = sender.next()
        let step1 = try #require(next1)
        let second = try MessageSeal.seal(header: Self.header(index: step1.index), padded: content, key: step1.key, nonce: step1.nonce, commitment: step1.commitment, identity: Self.alice)
        #expect(try MessageSeal.open(second, senderIdentity: identity, chain: start, replay: replay).header.chainIndex == 1)
    }
}
