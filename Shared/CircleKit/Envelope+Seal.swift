import CircleCrypto
import CircleProtocol
import Crypto

/// Sealing and opening envelopes with HPKE (PROTOCOL 7); the format and the signature check
/// are CircleProtocol's, shared with the server.
extension Envelope {
    /// Seals `chain` (its key and start index) to `recipientX25519`, which the caller has
    /// checked: certified by the recipient's pinned identity key, member at head.
    public static func seal(chainKey: [UInt8], startIndex: UInt32, to recipientX25519: [UInt8], address: EnvelopeAddress,
                            signer: Curve25519.Signing.PrivateKey) throws -> Envelope {
        try address.checkShape()
        guard chainKey.count == 32 else { throw ProtocolError.malformed("a chain key is 32 bytes") }
        _ = try KeyChecks.x25519PublicKey(recipientX25519)
        guard startIndex < SenderChain.maximumMessages else { throw ProtocolError.malformed("start index beyond the chain") }
        var plaintext = ByteWriter()
        plaintext.u8(version)
        plaintext.raw(chainKey)
        plaintext.u32(startIndex)
        let info = address.info
        let (enc, ciphertext) = try CircleHPKE.seal(plaintext.bytes, to: recipientX25519, info: info)
        let signature = Array(try signer.signature(for: signatureLabel + info + enc + ciphertext))
        return Envelope(address: address, enc: enc, ciphertext: ciphertext, signature: signature)
    }

    /// Checks the sender's signature first, then opens with the recipient's key: the chain key
    /// and its start index. A wrong address (another conversation, epoch, sender or recipient)
    /// fails both checks.
    public func open(senderIdentity: [UInt8], recipient: Curve25519.KeyAgreement.PrivateKey) throws -> SenderChain {
        try address.checkShape()
        let info = address.info
        guard verify(senderIdentity: senderIdentity) else { throw ProtocolError.badSignature("envelope") }
        let plaintext: [UInt8]
        do {
            plaintext = try CircleHPKE.open(ciphertext, enc: enc, recipient: recipient, info: info)
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError.decryptionFailed
        }
        var reader = ByteReader(plaintext)
        guard try reader.u8() == Self.version else { throw ProtocolError.malformed("unknown envelope version") }
        let key = try reader.raw(32)
        let start = try reader.u32()
        try reader.finish()
        guard start < SenderChain.maximumMessages else { throw ProtocolError.malformed("start index beyond the chain") }
        return SenderChain(chainKey: key, index: start)
    }
}
