import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Foundation
import Testing

/// A member as the protocol tests need one: a user id and an identity key.
struct Person {
    let id = UUID().uuidString.lowercased()
    let identity = Curve25519.Signing.PrivateKey()
    let agreement = Curve25519.KeyAgreement.PrivateKey()
    var publicKey: [UInt8] { Array(identity.publicKey.rawRepresentation) }
    var fingerprint: [UInt8] { IdentityFingerprint.of(publicKey) }
}

@Suite("Membership chain: genesis, ops, role rules, forks")
struct MembershipTests {
    let alice = Person(), bob = Person(), carol = Person(), mallory = Person()

    func start(_ kind: ConversationSettings.Kind = .group) throws -> MembershipChain {
        let genesis = try MembershipOp.genesis(creator: alice.id, creatorIdentity: alice.publicKey, settings: .init(kind: kind), createdAt: 1).sign(with: alice.identity)
        return try MembershipChain(genesis: genesis, creatorIdentity: alice.publicKey)
    }

    func op(_ chain: MembershipChain, by actor: Person, _ action: MembershipOp.Action, target: Person? = nil, role: MembershipOp.Role = .none,
            settings: ConversationSettings? = nil) -> MembershipOp {
        var op = chain.nextOp(actor: actor.id, action: action, createdAt: 2)
        if let target {
            op.target = target.id
            if action != .leave { op.targetFingerprint = target.fingerprint }
        }
        op.role = role
        op.settings = settings
        return op
    }

    func refuses(_ chain: MembershipChain, _ signed: SignedOp, actor: Person, _ comment: Comment) {
        var copy = chain
        #expect(throws: ProtocolError.self, comment) { try copy.append(signed, actorIdentity: actor.publicKey) }
        #expect(copy == chain, "a refused op changes nothing")
    }

    @Test("genesis and adds: the id is H(genesis), each op moves the epoch, members and roles follow the ops")
    func happyPath() throws {
        var chain = try start()
        #expect(chain.convId == chain.ops[0].hash && chain.epoch == chain.convId && chain.head == 0)
        try chain.append(try op(chain, by: alice, .add, target: bob, role: .member).sign(with: alice.identity), actorIdentity: alice.publicKey)
        let afterBob = chain.epoch
        try chain.append(try op(chain, by: alice, .add, target: carol, role: .admin).sign(with: alice.identity), actorIdentity: alice.publicKey)
        #expect(chain.head == 2 && chain.epoch != afterBob && chain.knows(epoch: afterBob))
        #expect(chain.role(of: bob.id) == .member && chain.role(of: carol.id) == .admin && chain.members.count == 3)
        try chain.append(try op(chain, by: carol, .remove, target: bob).sign(with: carol.identity), actorIdentity: carol.publicKey)
        #expect(!chain.isMember(bob.id))
        try chain.append(try op(chain, by: alice, .settings, settings: .init(kind: .group, disappearSeconds: 60, readReceipts: false)).sign(with: alice.identity), actorIdentity: alice.publicKey)
        #expect(chain.settings.disappearSeconds == 60 && !chain.settings.readReceipts)
        try chain.append(try op(chain, by: alice, .leave, target: alice).sign(with: alice.identity), actorIdentity: alice.publicKey)
        #expect(chain.members.keys.sorted() == [carol.id])
    }

    @Test("ops that break the rules are refused and change nothing")
    func refusals() throws {
        var chain = try start()
        try chain.append(try op(chain, by: alice, .add, target: bob, role: .member).sign(with: alice.identity), actorIdentity: alice.publicKey)
        // A non-admin adds, removes, changes roles or settings.
        refuses(chain, try op(chain, by: bob, .add, target: carol, role: .member).sign(with: bob.identity), actor: bob, "member adds")
        refuses(chain, try op(chain, by: bob, .remove, target: alice).sign(with: bob.identity), actor: bob, "member removes")
        refuses(chain, try op(chain, by: bob, .role, target: bob, role: .admin).sign(with: bob.identity), actor: bob, "member promotes")
        refuses(chain, try op(chain, by: bob, .settings, settings: .init(kind: .group, disappearSeconds: 5)).sign(with: bob.identity), actor: bob, "member sets")
        // A non-member signs an op.
        refuses(chain, try op(chain, by: mallory, .add, target: mallory, role: .admin).sign(with: mallory.identity), actor: mallory, "outsider")
        // Alice's op signed by another key, or checked against another key than the one recorded.
        refuses(chain, try op(chain, by: alice, .add, target: carol, role: .member).sign(with: mallory.identity), actor: alice, "forged signature")
        refuses(chain, try op(chain, by: alice, .add, target: carol, role: .member).sign(with: mallory.identity), actor: mallory, "swapped identity key")
        // Not on top of the head: wrong prevHash, wrong n, another conversation.
        var stale = op(chain, by: alice, .add, target: carol, role: .member)
        stale.prevHash = chain.convId
        refuses(chain, try stale.sign(with: alice.identity), actor: alice, "wrong prevHash")
        var skipped = op(chain, by: alice, .add, target: carol, role: .member)
        skipped.n += 1
        refuses(chain, try skipped.sign(with: alice.identity), actor: alice, "wrong n")
        var elsewhere = op(chain, by: alice, .add, target: carol, role: .member)
        elsewhere.convId = SecureRandom.bytes(32)
        refuses(chain, try elsewhere.sign(with: alice.identity), actor: alice, "another conversation")
        // Adding a member twice, removing with the wrong fingerprint, changing the kind, a second genesis.
        refuses(chain, try op(chain, by: alice, .add, target: bob, role: .member).sign(with: alice.identity), actor: alice, "already a member")
        var wrongKey = op(chain, by: alice, .remove, target: bob)
        wrongKey.targetFingerprint = mallory.fingerprint
        refuses(chain, try wrongKey.sign(with: alice.identity), actor: alice, "remove with another key")
        refuses(chain, try op(chain, by: alice, .settings, settings: .init(kind: .direct)).sign(with: alice.identity), actor: alice, "kind change")
        // The last admin cannot leave while others remain.
        refuses(chain, try op(chain, by: alice, .leave, target: alice).sign(with: alice.identity), actor: alice, "last admin leaves")
        // A bad-shaped op never parses.
        var noTarget = op(chain, by: alice, .add, role: .member)
        noTarget.targetFingerprint = carol.fingerprint
        #expect(throws: ProtocolError.self) { try MembershipOp(bytes: noTarget.bytes) }
        #expect(throws: ProtocolError.self) { try MembershipOp(bytes: op(chain, by: alice, .add, target: carol, role: .member).bytes + [0]) }
    }

    @Test("settings with a retention are version 2, without one version 1 as before: one encoding per value, both read back")
    func retentionSettings() throws {
        let kept = ConversationSettings(kind: .group, disappearSeconds: 3600, readReceipts: true, retentionDays: 30)
        #expect(Hex.encode(kept.bytes) == "0201" + "00000e10" + "01" + "001e")
        #expect(try ConversationSettings(bytes: kept.bytes) == kept)
        let plain = ConversationSettings(kind: .group, disappearSeconds: 3600)
        #expect(Hex.encode(plain.bytes) == "010100000e1001")
        // Version 2 with no retention, 3651 days, a cut u16; an unknown version.
        for refused in ["02010000000001" + "0000", "02010000000001" + "0e43", "02010000000001" + "00", "0301000000000100"] {
            #expect(throws: (any Error).self, "\(refused)") { try ConversationSettings(bytes: Hex.decode(refused) ?? [0xff]) }
        }
        // A retention goes into the chain like any other setting, by an admin.
        var chain = try start()
        try chain.append(try op(chain, by: alice, .settings, settings: kept).sign(with: alice.identity), actorIdentity: alice.publicKey)
        #expect(chain.settings.retentionDays == 30)
    }

    @Test("a direct conversation takes one add, as op 1, and nobody is removed from it")
    func direct() throws {
        var chain = try start(.direct)
        refuses(chain, try op(chain, by: alice, .add, target: bob, role: .member).sign(with: alice.identity), actor: alice, "other party not admin")
        try chain.append(try op(chain, by: alice, .add, target: bob, role: .admin).sign(with: alice.identity), actorIdentity: alice.publicKey)
        refuses(chain, try op(chain, by: alice, .add, target: carol, role: .admin).sign(with: alice.identity), actor: alice, "third party")
        refuses(chain, try op(chain, by: alice, .remove, target: bob).sign(with: alice.identity), actor: alice, "remove")
        refuses(chain, try op(chain, by: bob, .role, target: alice, role: .member).sign(with: bob.identity), actor: bob, "role")
        try chain.append(try op(chain, by: bob, .settings, settings: .init(kind: .direct, disappearSeconds: 3600)).sign(with: bob.identity), actorIdentity: bob.publicKey)
        #expect(chain.settings.disappearSeconds == 3600)
    }

    @Test("a genesis naming another key, or signed by another key, is refused")
    func badGenesis() throws {
        let genesis = MembershipOp.genesis(creator: alice.id, creatorIdentity: mallory.publicKey, settings: .init(kind: .group), createdAt: 1)
        #expect(throws: ProtocolError.self) { try MembershipChain(genesis: try genesis.sign(with: mallory.identity), creatorIdentity: alice.publicKey) }
        let good = MembershipOp.genesis(creator: alice.id, creatorIdentity: alice.publicKey, settings: .init(kind: .group), createdAt: 1)
        #expect(throws: ProtocolError.self) { try MembershipChain(genesis: try good.sign(with: mallory.identity), creatorIdentity: alice.publicKey) }
    }

    @Test("a server showing two histories raises the fork alarm; the same history extends quietly")
    func fork() throws {
        var base = try start()
        try base.append(try op(base, by: alice, .add, target: bob, role: .member).sign(with: alice.identity), actorIdentity: alice.publicKey)
        var bobsView = base
        var carolsView = base
        let toBob = try op(base, by: alice, .add, target: mallory, role: .member).sign(with: alice.identity)
        let toCarol = try op(base, by: alice, .add, target: carol, role: .member).sign(with: alice.identity)
        try bobsView.append(toBob, actorIdentity: alice.publicKey)
        try carolsView.append(toCarol, actorIdentity: alice.publicKey)
        // Bob later meets Carol's epoch: the server must show him op 2, which differs from his.
        #expect(!bobsView.knows(epoch: carolsView.epoch))
        let keys = [alice.id: alice.publicKey, bob.id: bob.publicKey]
        #expect(throws: ProtocolError.fork("op 2 differs from the one this device verified before")) {
            try bobsView.extend(with: carolsView.ops, identity: { keys[$0]! })
        }
        var fresh = try MembershipChain(genesis: base.ops[0], creatorIdentity: alice.publicKey)
        try fresh.extend(with: bobsView.ops, identity: { keys[$0]! })
        #expect(fresh == bobsView)
    }

    @Test("a group holds at most 500 members")
    func cap() throws {
        var chain = try start()
        for _ in 1..<MembershipChain.maximumMembers {
            try chain.append(try op(chain, by: alice, .add, target: Person(), role: .member).sign(with: alice.identity), actorIdentity: alice.publicKey)
        }
        #expect(chain.members.count == 500)
        refuses(chain, try op(chain, by: alice, .add, target: Person(), role: .member).sign(with: alice.identity), actor: alice, "501st")
    }
}

@Suite("Envelopes and safety numbers")
struct EnvelopeTests {
    let alice = Person(), bob = Person(), mallory = Person()

    func address(conv: [UInt8] = [UInt8](repeating: 1, count: 32), epoch: [UInt8] = [UInt8](repeating: 2, count: 32), generation: UInt32 = 0, recipient: String? = nil) -> EnvelopeAddress {
        EnvelopeAddress(convId: conv, epoch: epoch, sender: alice.id, deviceId: [UInt8](repeating: 3, count: 16), generation: generation, recipient: recipient ?? bob.id)
    }

    @Test("an envelope opens for its recipient with the sender's key, and is refused anywhere else")
    func roundTrip() throws {
        let chain = SenderChain.fresh()
        let bobKey = Array(bob.agreement.publicKey.rawRepresentation)
        let envelope = try Envelope.seal(chainKey: chain.chainKey, startIndex: 7, to: bobKey, address: address(), signer: alice.identity)
        let opened = try envelope.open(senderIdentity: alice.publicKey, recipient: bob.agreement)
        #expect(opened.chainKey == chain.chainKey && opened.index == 7)
        // Replayed into another conversation, epoch, generation or to another recipient.
        for moved in [address(conv: SecureRandom.bytes(32)), address(epoch: SecureRandom.bytes(32)), address(generation: 1), address(recipient: mallory.id)] {
            let replayed = Envelope(address: moved, enc: envelope.enc, ciphertext: envelope.ciphertext, signature: envelope.signature)
            #expect(throws: ProtocolError.badSignature("envelope")) { try replayed.open(senderIdentity: alice.publicKey, recipient: bob.agreement) }
        }
        // Re-signed by someone else: refused against the sender's key.
        let resigned = Envelope(address: envelope.address, enc: envelope.enc, ciphertext: envelope.ciphertext,
                                signature: Array(try mallory.identity.signature(for: Envelope.signatureLabel + envelope.address.info + envelope.enc + envelope.ciphertext)))
        #expect(throws: ProtocolError.self) { try resigned.open(senderIdentity: alice.publicKey, recipient: bob.agreement) }
        // The wrong recipient key, or any flipped byte.
        #expect(throws: ProtocolError.self) { try envelope.open(senderIdentity: alice.publicKey, recipient: mallory.agreement) }
        for index in envelope.ciphertext.indices {
            var ciphertext = envelope.ciphertext
            ciphertext[index] ^= 0x80
            #expect(throws: ProtocolError.self) {
                try Envelope(address: envelope.address, enc: envelope.enc, ciphertext: ciphertext, signature: envelope.signature).open(senderIdentity: alice.publicKey, recipient: bob.agreement)
            }
        }
        // Small-order and non-canonical recipient keys are refused before sealing.
        #expect(throws: (any Error).self) { try Envelope.seal(chainKey: chain.chainKey, startIndex: 0, to: [UInt8](repeating: 0, count: 32), address: address(), signer: alice.identity) }
        #expect(throws: (any Error).self) { try Envelope.seal(chainKey: chain.chainKey, startIndex: 0, to: [UInt8](repeating: 0xff, count: 32), address: address(), signer: alice.identity) }
    }

    @Test("safety numbers: 30 digits per member, the same 60 on both sides, changed by any key change")
    func safetyNumbers() {
        let server = String(repeating: "ab", count: 16)
        let a = SafetyNumber.half(serverId: server, userId: alice.id, identityPublic: alice.publicKey)
        let b = SafetyNumber.half(serverId: server, userId: bob.id, identityPublic: bob.publicKey)
        #expect(a.count == 30 && a.allSatisfy(\.isNumber))
        #expect(a == SafetyNumber.half(serverId: server, userId: alice.id, identityPublic: alice.publicKey))
        #expect(SafetyNumber.combined(a, b) == SafetyNumber.combined(b, a))
        #expect(SafetyNumber.combined(a, b).split(separator: " ").count == 12)
        #expect(a != SafetyNumber.half(serverId: server, userId: alice.id, identityPublic: mallory.publicKey))
        #expect(a != SafetyNumber.half(serverId: String(repeating: "cd", count: 16), userId: alice.id, identityPublic: alice.publicKey))
    }
}
