import CircleCore
import CircleCrypto
import Crypto
import Foundation
import Testing
@testable import CircleKit
@testable import CircleProtocol

/// Test vectors for every Circle construction (PROTOCOL.md), made by CircleKit from fixed keys
/// and nonces and committed as Tests/Vectors/circle-v1.json, so other implementations (the
/// browser's) are held to the same bytes. Signatures are verify-only: Ed25519 implementations may
/// sign differently, but every valid signature must verify.
///
/// `CIRCLE_WRITE_VECTORS=1 swift test --filter CircleVectorTests` rewrites the file; otherwise the
/// test recomputes every value and compares it with the committed one.
@Suite("Circle test vectors")
struct CircleVectorTests {
    static var file: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Vectors/circle-v1.json")
    }

    static func filled(_ byte: UInt8, _ count: Int = 32) -> [UInt8] { [UInt8](repeating: byte, count: count) }
    static func hex(_ bytes: some Sequence<UInt8>) -> String { Hex.encode(Array(bytes)) }

    /// Every vector, as name → hex (or text) value. Keys ending in `Signature` are verify-only.
    static func compute() throws -> [String: String] {
        var v: [String: String] = [:]
        // Login (PROTOCOL 2)
        let serverId = "0123456789abcdef0123456789abcdef"
        let userId = "00000000-0000-4000-8000-000000000001"
        let peerId = "00000000-0000-4000-8000-000000000002"
        let password = "correct horse battery staple"
        let serverSalt = filled(0x11)
        v["login.password"] = password
        v["login.serverId"] = serverId
        v["login.username"] = "alice"
        v["login.serverSalt"] = hex(serverSalt)
        v["login.iterations"] = String(LoginKeys.minimumIterations)
        let origin = "https://circle.example.org"
        v["login.origin"] = origin
        v["login.pbkdf2Salt"] = hex(LoginKeys.pbkdf2Salt(origin: origin, serverId: serverId, username: "alice", serverSalt: serverSalt))
        let derived = try LoginKeys.derive(password: password, origin: origin, serverId: serverId, username: "alice", serverSalt: serverSalt,
                                           kdf: .init(name: LoginKeys.kdfName, iterations: LoginKeys.minimumIterations))
        // An account made before the binding (no origin).
        v["login.unbound.pbkdf2Salt"] = hex(LoginKeys.pbkdf2Salt(origin: nil, serverId: serverId, username: "alice", serverSalt: serverSalt))
        let unbound = try LoginKeys.derive(password: password, origin: nil, serverId: serverId, username: "alice", serverSalt: serverSalt,
                                           kdf: .init(name: LoginKeys.kdfName, iterations: LoginKeys.minimumIterations))
        v["login.unbound.authKey"] = hex(unbound.authKey)
        v["login.unbound.kek"] = hex(unbound.kek)
        v["login.authKey"] = hex(derived.authKey)
        v["login.kek"] = hex(derived.kek)
        // Recovery key
        let recovery = RecoveryKey(bytes: filled(0x22, 16))
        v["recovery.key"] = hex(recovery.bytes)
        v["recovery.text"] = recovery.text
        v["recovery.authKey"] = hex(recovery.authKey)
        v["recovery.kek"] = hex(recovery.kek)
        // Key bundle, sealed under the kek with a fixed nonce
        let identity = try Curve25519.Signing.PrivateKey(rawRepresentation: filled(0x01))
        let agreement = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: filled(0x02))
        let bundle = KeyBundle(identity: identity, agreement: agreement, vaultMasterKey: filled(0x03))
        let bundleNonce = filled(0x04, 12)
        let sealedBundle = try AES.GCM.seal(bundle.plaintext, using: SymmetricKey(data: derived.kek), nonce: AES.GCM.Nonce(data: bundleNonce),
                                            authenticating: KeyBundle.aad(label: KeyBundle.bundleLabel, userId: userId))
        v["bundle.userId"] = userId
        v["bundle.identitySeed"] = hex(filled(0x01))
        v["bundle.x25519Private"] = hex(filled(0x02))
        v["bundle.vmk"] = hex(filled(0x03))
        v["bundle.identityPublic"] = hex(identity.publicKey.rawRepresentation)
        v["bundle.x25519Public"] = hex(agreement.publicKey.rawRepresentation)
        v["bundle.sealed"] = hex(sealedBundle.combined!)
        v["kxcert.message"] = hex(CircleLabels.kxCertMessage(userId: userId, x25519Public: Array(agreement.publicKey.rawRepresentation)))
        v["kxcert.Signature"] = hex(try bundle.kxCert(userId: userId))
        // Membership ops (PROTOCOL 5)
        let settings = ConversationSettings(kind: .group, disappearSeconds: 3600, readReceipts: true)
        v["settings.bytes"] = hex(settings.bytes)
        let genesis = MembershipOp.genesis(creator: userId, creatorIdentity: Array(identity.publicKey.rawRepresentation), settings: settings,
                                           createdAt: 1_700_000_000_000, nonce: filled(0x08, 16))
        let signedGenesis = try genesis.sign(with: identity)
        v["op.genesis.bytes"] = hex(genesis.bytes)
        v["op.genesis.hash"] = hex(signedGenesis.hash)
        v["op.genesis.Signature"] = hex(signedGenesis.signature)
        let peer = try Curve25519.Signing.PrivateKey(rawRepresentation: filled(0x09))
        v["op.peerIdentityPublic"] = hex(peer.publicKey.rawRepresentation)
        var add = MembershipOp(convId: signedGenesis.hash, n: 1, prevHash: signedGenesis.hash, actor: userId, action: .add, target: peerId,
                               targetFingerprint: IdentityFingerprint.of(Array(peer.publicKey.rawRepresentation)), role: .member, createdAt: 1_700_000_000_001)
        add.settings = nil
        let signedAdd = try add.sign(with: identity)
        v["op.add.bytes"] = hex(add.bytes)
        v["op.add.hash"] = hex(signedAdd.hash)
        v["op.add.Signature"] = hex(signedAdd.signature)
        // Sender chain (PROTOCOL 6)
        var chain = SenderChain(chainKey: filled(0x05))
        var first: (key: [UInt8], nonce: [UInt8], commitment: [UInt8])?
        for index in 0..<3 {
            let step = chain.next()!
            if index == 0 { first = (step.key, step.nonce, step.commitment) }
            v["chain.\(index).key"] = hex(step.key)
            v["chain.\(index).nonce"] = hex(step.nonce)
            v["chain.\(index).commitment"] = hex(step.commitment)
        }
        v["chain.start"] = hex(filled(0x05))
        v["chain.3.chainKey"] = hex(chain.chainKey)
        // Header, padding, message
        let header = MessageHeader(convId: signedGenesis.hash, epoch: signedAdd.hash, senderUserId: userId, deviceId: filled(0x0a, 16), generation: 0,
                                   chainIndex: 0, messageId: filled(0x0b, 16), sentAt: 1_700_000_000_002, expiresAt: 1_700_003_600_002)
        v["header.bytes"] = hex(header.bytes)
        let padded = try MessagePadding.pad(contentType: 1, content: Array("hello, circle".utf8))
        v["message.text"] = "hello, circle"
        v["message.padded"] = hex(padded)
        let sealed = try MessageSeal.seal(header: header, padded: padded, key: first!.key, nonce: first!.nonce, commitment: first!.commitment, identity: identity)
        v["message.ciphertext"] = hex(sealed.ciphertext)
        v["message.Signature"] = hex(sealed.signature)
        // Envelope (PROTOCOL 7), with a fixed ephemeral key
        let recipient = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: filled(0x06))
        let ephemeral = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: filled(0x07))
        let address = EnvelopeAddress(convId: signedGenesis.hash, epoch: signedAdd.hash, sender: userId, deviceId: filled(0x0a, 16), generation: 0, recipient: peerId)
        var plaintext = ByteWriter()
        plaintext.u8(Envelope.version)
        plaintext.raw(filled(0x05))
        plaintext.u32(0)
        let (enc, context) = try CircleHPKE.setupSender(recipient: Array(recipient.publicKey.rawRepresentation), info: address.info, ephemeral: ephemeral)
        let ciphertext = try context.seal(plaintext.bytes, aad: [], sequence: 0)
        v["envelope.recipientPrivate"] = hex(filled(0x06))
        v["envelope.ephemeralPrivate"] = hex(filled(0x07))
        v["envelope.info"] = hex(address.info)
        v["envelope.plaintext"] = hex(plaintext.bytes)
        v["envelope.enc"] = hex(enc)
        v["envelope.ciphertext"] = hex(ciphertext)
        v["envelope.Signature"] = hex(try identity.signature(for: Envelope.signatureLabel + address.info + enc + ciphertext))
        // Safety number (PROTOCOL 5.2)
        let mine = SafetyNumber.half(serverId: serverId, userId: userId, identityPublic: Array(identity.publicKey.rawRepresentation))
        let theirs = SafetyNumber.half(serverId: serverId, userId: peerId, identityPublic: Array(peer.publicKey.rawRepresentation))
        v["safety.half.alice"] = mine
        v["safety.half.peer"] = theirs
        v["safety.combined"] = SafetyNumber.combined(mine, theirs)
        // Vault (PROTOCOL 9): one file of 100 bytes, its metadata, the owner's wrap, a link with a password.
        let fileKey = filled(0x31), fileId = filled(0x32, 16), vaultSalt = filled(0x33, 16)
        let content = (0..<100).map { UInt8($0) }
        var sealer = VaultStreamSealer(fileKey: fileKey, size: UInt64(content.count), salt: vaultSalt)
        let stream = sealer.header + (try sealer.seal(content)) + (try sealer.finish())
        v["vault.fileKey"] = hex(fileKey)
        v["vault.fileId"] = hex(fileId)
        v["vault.salt"] = hex(vaultSalt)
        v["vault.content"] = hex(content)
        v["vault.stream"] = hex(stream)
        let meta = VaultMetadata(name: "notes.txt", type: "text/plain", size: 100)
        v["vault.meta.name"] = meta.name
        v["vault.meta.type"] = meta.type
        v["vault.meta.size"] = String(meta.size)
        v["vault.meta.nonce"] = hex(filled(0x34, 12))
        v["vault.meta.sealed"] = hex(try meta.seal(fileKey: fileKey, fileId: fileId, nonce: filled(0x34, 12)))
        v["vault.owner"] = userId
        v["vault.wrap.nonce"] = hex(filled(0x35, 12))
        v["vault.wrap"] = hex(try VaultKeys.wrap(fileKey: fileKey, owner: userId, fileId: fileId, vaultMasterKey: filled(0x03), nonce: filled(0x35, 12)))
        let linkId = filled(0x36, 16), linkKey = filled(0x37), linkSalt = filled(0x38, 16)
        let linkSecrets = try VaultKeys.linkSecrets(linkKey: linkKey, password: "open sesame", salt: linkSalt)
        v["vault.link.id"] = hex(linkId)
        v["vault.link.key"] = hex(linkKey)
        v["vault.link.salt"] = hex(linkSalt)
        v["vault.link.password"] = "open sesame"
        v["vault.link.access"] = hex(linkSecrets.access)
        v["vault.link.verifier"] = hex(linkSecrets.verifier)
        v["vault.link.unwrapKey"] = hex(linkSecrets.unwrapKey)
        v["vault.link.nonce"] = hex(filled(0x39, 12))
        v["vault.link.wrap"] = hex(try VaultKeys.wrapForLink(fileKey: fileKey, linkId: linkId, secrets: linkSecrets, nonce: filled(0x39, 12)))
        let openLink = try VaultKeys.linkSecrets(linkKey: linkKey, password: nil, salt: nil)
        v["vault.link.noPassword.access"] = hex(openLink.access)
        v["vault.link.noPassword.unwrapKey"] = hex(openLink.unwrapKey)
        // Call signal (PROTOCOL 10): Alice's device 0x41.. to the peer's device 0x42.., with a fixed ephemeral key.
        let callAddress = CallSignalAddress(callId: filled(0x40, 16), sender: userId, senderDevice: filled(0x41, 16), recipient: peerId,
                                            recipientDevice: filled(0x42, 16), seq: 1_700_000_000_000_001)
        let callPlaintext = Array("{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}".utf8)
        let callWire = try CallSignalWire.seal(callPlaintext, to: Array(recipient.publicKey.rawRepresentation), address: callAddress, signer: identity,
                                               ephemeral: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: filled(0x43)))
        v["callSignal.callId"] = hex(callAddress.callId)
        v["callSignal.sender"] = userId
        v["callSignal.senderDevice"] = hex(callAddress.senderDevice)
        v["callSignal.recipient"] = peerId
        v["callSignal.recipientDevice"] = hex(callAddress.recipientDevice)
        v["callSignal.recipientPrivate"] = hex(filled(0x06))
        v["callSignal.ephemeralPrivate"] = hex(filled(0x43))
        v["callSignal.seq"] = String(callAddress.seq)
        v["callSignal.info"] = hex(callAddress.info)
        v["callSignal.plaintext"] = hex(callPlaintext)
        v["callSignal.enc"] = hex(callWire.enc)
        v["callSignal.ciphertext"] = hex(callWire.ciphertext)
        v["callSignal.wireSignature"] = hex(callWire.bytes)
        return v
    }

    @Test("the committed vectors match what CircleKit computes, and every stored signature verifies")
    func vectors() throws {
        let computed = try Self.compute()
        if ProcessInfo.processInfo.environment["CIRCLE_WRITE_VECTORS"] == "1" {
            let data = try JSONSerialization.data(withJSONObject: computed, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: Self.file)
        }
        let stored = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.file)) as? [String: String])
        #expect(Set(stored.keys) == Set(computed.keys))
        for (name, value) in computed.sorted(by: { $0.key < $1.key }) where !name.hasSuffix("Signature") {
            #expect(stored[name] == value, "\(name)")
        }
        // Verify-only: the stored signatures verify under the stored keys.
        let identityPublic = Hex.decode(stored["bundle.identityPublic"]!)!
        func verifies(_ signature: String, _ message: [UInt8]) -> Bool {
            KeyChecks.verify(signature: Hex.decode(stored[signature]!)!, message: message, publicKey: identityPublic)
        }
        #expect(verifies("kxcert.Signature", Hex.decode(stored["kxcert.message"]!)!))
        #expect(verifies("op.genesis.Signature", MembershipOp.signatureLabel + Hex.decode(stored["op.genesis.bytes"]!)!))
        #expect(verifies("op.add.Signature", MembershipOp.signatureLabel + Hex.decode(stored["op.add.bytes"]!)!))
        #expect(verifies("message.Signature", MessageSeal.signatureLabel + Hex.decode(stored["header.bytes"]!)! + Hex.decode(stored["message.ciphertext"]!)!))
        #expect(verifies("envelope.Signature", Envelope.signatureLabel + Hex.decode(stored["envelope.info"]!)! + Hex.decode(stored["envelope.enc"]!)! + Hex.decode(stored["envelope.ciphertext"]!)!))
        let callWire = try CallSignalWire(bytes: Hex.decode(stored["callSignal.wireSignature"]!)!)
        let callAddress = CallSignalAddress(callId: Hex.decode(stored["callSignal.callId"]!)!, sender: stored["callSignal.sender"]!,
                                            senderDevice: Hex.decode(stored["callSignal.senderDevice"]!)!, recipient: stored["callSignal.recipient"]!,
                                            recipientDevice: Hex.decode(stored["callSignal.recipientDevice"]!)!, seq: UInt64(stored["callSignal.seq"]!)!)
        #expect(Self.hex(callAddress.info) == stored["callSignal.info"])
        #expect(Self.hex(try callWire.open(address: callAddress, senderIdentity: identityPublic,
                                           recipient: Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Hex.decode(stored["callSignal.recipientPrivate"]!)!)))
                == stored["callSignal.plaintext"])
        // And the sealed values open with the public API.
        let recipient = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Hex.decode(stored["envelope.recipientPrivate"]!)!)
        let opened = try CircleHPKE.open(Hex.decode(stored["envelope.ciphertext"]!)!, enc: Hex.decode(stored["envelope.enc"]!)!, recipient: recipient,
                                         info: Hex.decode(stored["envelope.info"]!)!)
        #expect(Self.hex(opened) == stored["envelope.plaintext"])
        let bundle = try KeyBundle.open(Hex.decode(stored["bundle.sealed"]!)!, with: Hex.decode(stored["login.kek"]!)!, userId: stored["bundle.userId"]!,
                                        label: KeyBundle.bundleLabel, identityPublic: identityPublic, x25519Public: Hex.decode(stored["bundle.x25519Public"]!)!)
        #expect(bundle.vaultMasterKey == Hex.decode(stored["bundle.vmk"]!)!)
    }
}
