import CircleCrypto
import CircleProtocol
import Crypto

/// Sealing and opening call signals (PROTOCOL 10): SDP, ICE candidates and media state travel
/// between two devices sealed to the recipient and signed by the sender, so the relay cannot
/// read them nor swap a DTLS fingerprint.
extension CallSignalWire {
    /// Seals `plaintext` (a signal's JSON) to `recipientX25519`, which the caller has checked
    /// (certified by the recipient's pinned identity key). The ephemeral key is fresh unless given (vectors).
    public static func seal(_ plaintext: [UInt8], to recipientX25519: [UInt8], address: CallSignalAddress, signer: Curve25519.Signing.PrivateKey,
                            ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()) throws -> CallSignalWire {
        try address.checkShape()
        guard !plaintext.isEmpty, plaintext.count <= maximumPlaintext else { throw ProtocolError.malformed("a call signal holds 1 to \(maximumPlaintext) bytes") }
        _ = try KeyChecks.x25519PublicKey(recipientX25519)
        let info = address.info
        let (enc, context) = try CircleHPKE.setupSender(recipient: recipientX25519, info: info, ephemeral: ephemeral)
        let ciphertext = try context.seal(plaintext, aad: [], sequence: 0)
        let signature = Array(try signer.signature(for: signatureLabel + info + enc + ciphertext))
        return CallSignalWire(seq: address.seq, enc: enc, ciphertext: ciphertext, signature: signature)
    }

    /// Checks the sender's signature over the address the recipient expects, then opens. A signal
    /// for another call, device or member, or altered anywhere, fails.
    public func open(address: CallSignalAddress, senderIdentity: [UInt8], recipient: Curve25519.KeyAgreement.PrivateKey) throws -> [UInt8] {
        try address.checkShape()
        guard verify(address: address, senderIdentity: senderIdentity) else { throw ProtocolError.badSignature("call signal") }
        do {
            return try CircleHPKE.open(ciphertext, enc: enc, recipient: recipient, info: address.info)
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError.decryptionFailed
        }
    }
}
