import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Testing

/// Call signals (PROTOCOL 10): only the named recipient device's owner opens them, only with the
/// sender's signature intact over exactly that call, those devices and that sequence number.
@Suite("Call signals")
struct CallSignalTests {
    let alice = Curve25519.Signing.PrivateKey()
    let bob = Curve25519.KeyAgreement.PrivateKey()
    let address = CallSignalAddress(callId: SecureRandom.bytes(16), sender: "00000000-0000-4000-8000-000000000001", senderDevice: SecureRandom.bytes(16),
                                    recipient: "00000000-0000-4000-8000-000000000002", recipientDevice: SecureRandom.bytes(16), seq: 42)
    let sdp = Array("{\"type\":\"offer\",\"sdp\":\"v=0 a=fingerprint:sha-256 AB:CD\"}".utf8)

    func sealed() throws -> CallSignalWire {
        try CallSignalWire.seal(sdp, to: Array(bob.publicKey.rawRepresentation), address: address, signer: alice)
    }

    @Test("a signal opens for its recipient and survives the wire form")
    func roundTrip() throws {
        let wire = try CallSignalWire(bytes: try sealed().bytes)
        #expect(wire.seq == 42)
        #expect(try wire.open(address: address, senderIdentity: Array(alice.publicKey.rawRepresentation), recipient: bob) == sdp)
    }

    @Test("altered bytes, another address, another sequence number or a re-signature are refused")
    func tampering() throws {
        let wire = try sealed()
        let identity = Array(alice.publicKey.rawRepresentation)
        // Any byte of enc, ciphertext or signature flipped.
        for index in [9, 9 + 32, wire.bytes.count - 70, wire.bytes.count - 1] {
            var bytes = wire.bytes
            bytes[index] ^= 0x01
            let altered = try CallSignalWire(bytes: bytes)
            #expect(throws: ProtocolError.self) { try altered.open(address: address, senderIdentity: identity, recipient: bob) }
        }
        // The same signal presented for another device, call or sender.
        for change in [{ (a: inout CallSignalAddress) in a.recipientDevice = SecureRandom.bytes(16) },
                       { (a: inout CallSignalAddress) in a.callId = SecureRandom.bytes(16) },
                       { (a: inout CallSignalAddress) in a.senderDevice = SecureRandom.bytes(16) },
                       { (a: inout CallSignalAddress) in a.seq = 43 }] {
            var other = address
            change(&other)
            #expect(throws: ProtocolError.self) { try wire.open(address: other, senderIdentity: identity, recipient: bob) }
        }
        // The server (or anyone) re-signing the sealed bytes with its own key: the sender's key refuses it.
        let mallory = Curve25519.Signing.PrivateKey()
        let resigned = CallSignalWire(seq: wire.seq, enc: wire.enc, ciphertext: wire.ciphertext,
                                      signature: Array(try mallory.signature(for: CallSignalWire.signatureLabel + address.info + wire.enc + wire.ciphertext)))
        #expect(throws: ProtocolError.badSignature("call signal")) { try resigned.open(address: address, senderIdentity: identity, recipient: bob) }
        // A fresh signal sealed by the server to Bob and signed with its own key: the same.
        let forged = try CallSignalWire.seal(Array("{\"type\":\"offer\",\"sdp\":\"evil\"}".utf8), to: Array(bob.publicKey.rawRepresentation), address: address, signer: mallory)
        #expect(throws: ProtocolError.self) { try forged.open(address: address, senderIdentity: identity, recipient: bob) }
        // Another recipient's key cannot open it even with the signature intact.
        #expect(throws: ProtocolError.self) { try wire.open(address: address, senderIdentity: identity, recipient: Curve25519.KeyAgreement.PrivateKey()) }
    }

    @Test("the wire form refuses other versions and impossible lengths")
    func shape() throws {
        var bytes = try sealed().bytes
        bytes[0] = 2
        #expect(throws: ProtocolError.self) { try CallSignalWire(bytes: bytes) }
        #expect(throws: ProtocolError.self) { try CallSignalWire(bytes: [UInt8](repeating: 1, count: CallSignalWire.overhead)) }
        #expect(throws: ProtocolError.self) { try CallSignalWire(bytes: [1] + [UInt8](repeating: 0, count: CallSignalWire.overhead + CallSignalWire.maximumPlaintext)) }
        #expect(throws: ProtocolError.self) {
            try CallSignalWire.seal([], to: Array(bob.publicKey.rawRepresentation), address: address, signer: alice)
        }
    }
}
