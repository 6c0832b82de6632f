/// A conversation's membership as its verified chain of ops says (PROTOCOL 5).
///
/// The same rules run on the server (which accepts an op only on top of the head) and in every
/// client (which replays the chain from the pinned genesis before sealing any key). Role rules:
/// - genesis: the creator is the only member and an admin;
/// - add: an admin adds a non-member as member or admin; a group holds at most 500 members; a
///   direct conversation takes exactly one add, as op 1, of the other party as admin, and none later;
/// - remove: an admin removes another member (not in a direct conversation);
/// - role: an admin changes another member's role (not in a direct conversation);
/// - settings: an admin changes the timer, receipts or retention; the kind never changes;
/// - leave: a member leaves, unless they are the last admin and others remain.
/// Every op's actor must be a member whose identity key matches the fingerprint recorded when
/// they were added, and the signature must verify under that key.
public struct MembershipChain: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public let role: MembershipOp.Role
        public let fingerprint: [UInt8]

        public init(role: MembershipOp.Role, fingerprint: [UInt8]) {
            self.role = role
            self.fingerprint = fingerprint
        }
    }

    public static let maximumMembers = 500

    public private(set) var convId: [UInt8]
    public private(set) var settings: ConversationSettings
    public private(set) var members: [String: Member]
    /// The ops this value verified, in order: `ops[i]` is op `firstKnown + i`.
    public private(set) var ops: [SignedOp]
    /// `H(op)` of each op in `ops`: the epochs this chain has passed through.
    public private(set) var hashes: [[UInt8]]
    /// The number of the first op in `ops` (0 for a chain verified from its genesis).
    public private(set) var firstKnown: UInt32
    /// When each user was a member: epochs `from..<until` (op numbers), per stay.
    public private(set) var stays: [String: [Stay]] = [:]

    public struct Stay: Sendable, Equatable, Codable {
        public let from: UInt32
        public var until: UInt32?
        /// The identity-key fingerprint recorded when they joined (nil in a restored chain).
        public var fingerprint: [UInt8]?
    }

    public var kind: ConversationSettings.Kind { settings.kind }
    public var head: UInt32 { firstKnown + UInt32(ops.count) - 1 }
    /// `H(head op)`: in every message header and envelope.
    public var epoch: [UInt8] { hashes[hashes.count - 1] }

    /// Starts a chain from its genesis, checking the creator's signature and fingerprint.
    public init(genesis: SignedOp, creatorIdentity: [UInt8]) throws {
        let op = try MembershipOp(bytes: genesis.bytes)
        guard op.action == .genesis else { throw ProtocolError.refused("a chain starts with a genesis op") }
        guard IdentityFingerprint.of(creatorIdentity) == op.targetFingerprint else {
            throw ProtocolError.refused("the genesis names another identity key than its creator's")
        }
        guard genesis.verify(actorIdentity: creatorIdentity) else { throw ProtocolError.badSignature("genesis op") }
        convId = genesis.hash
        settings = op.settings!
        members = [op.actor: Member(role: .admin, fingerprint: op.targetFingerprint)]
        ops = [genesis]
        hashes = [convId]
        firstKnown = 0
        stays = [op.actor: [Stay(from: 0, until: nil, fingerprint: op.targetFingerprint)]]
    }

    /// The state at a head the caller verified earlier and stored (the server keeps members,
    /// roles and settings in tables rather than replaying every signature on each op).
    public init(restoring convId: [UInt8], settings: ConversationSettings, members: [String: Member], head: SignedOp) throws {
        let op = try MembershipOp(bytes: head.bytes)
        self.convId = convId
        self.settings = settings
        self.members = members
        self.ops = [head]
        self.hashes = [head.hash]
        self.firstKnown = op.n
    }

    public func role(of userId: String) -> MembershipOp.Role { members[userId]?.role ?? .none }

    /// The identity-key fingerprint this chain recorded for `userId` when they joined, for the
    /// stay that covers `epoch`; nil when they were not a member then. A message or envelope of
    /// that epoch verifies under that key only (PROTOCOL 5.1).
    public func fingerprint(of userId: String, atEpoch epoch: [UInt8]) -> [UInt8]? {
        guard let index = hashes.firstIndex(of: epoch) else { return nil }
        let n = firstKnown + UInt32(index)
        return stays[userId, default: []].first { $0.from <= n && ($0.until.map { n < $0 } ?? true) }?.fingerprint
    }

    /// Whether `userId` was a member at `epoch` (an epoch this chain verified; false otherwise).
    public func wasMember(_ userId: String, atEpoch epoch: [UInt8]) -> Bool {
        guard let index = hashes.firstIndex(of: epoch) else { return false }
        let n = firstKnown + UInt32(index)
        return stays[userId, default: []].contains { $0.from <= n && ($0.until.map { n < $0 } ?? true) }
    }

    public func isMember(_ userId: String) -> Bool { members[userId] != nil }

    /// Whether `epoch` is one this chain passed through (else: unknown, or a fork).
    public func knows(epoch: [UInt8]) -> Bool { hashes.contains(epoch) }

    /// The op that would come next, unsigned, for the caller to fill in and sign.
    public func nextOp(actor: String, action: MembershipOp.Action, createdAt: UInt64) -> MembershipOp {
        MembershipOp(convId: convId, n: head + 1, prevHash: epoch, actor: actor, action: action, createdAt: createdAt)
    }

    /// Checks `signed` against every rule and appends it; on any failure nothing changes.
    /// `actorIdentity` is the actor's identity key as the caller knows it (pinned, or the directory's).
    public mutating func append(_ signed: SignedOp, actorIdentity: [UInt8]) throws {
        let op = try MembershipOp(bytes: signed.bytes)
        func refuse(_ why: String) -> ProtocolError { .refused(why) }
        guard op.convId == convId else { throw refuse("the op belongs to another conversation") }
        guard op.n == head + 1, op.prevHash == epoch else { throw ProtocolError.staleHead(op: UInt64(op.n), head: UInt64(head)) }
        guard let actor = members[op.actor] else { throw refuse("the actor is not a member") }
        guard IdentityFingerprint.of(actorIdentity) == actor.fingerprint else {
            throw refuse("the actor's identity key is not the one recorded for them")
        }
        guard signed.verify(actorIdentity: actorIdentity) else { throw ProtocolError.badSignature("membership op") }
        var members = self.members
        var settings = self.settings
        let isAdmin = actor.role == .admin
        let target = members[op.target]
        switch op.action {
        case .genesis:
            throw refuse("a chain has one genesis")
        case .add:
            guard isAdmin else { throw refuse("only admins add members") }
            guard target == nil else { throw refuse("the target is already a member") }
            guard members.count < Self.maximumMembers else { throw refuse("a conversation holds at most \(Self.maximumMembers) members") }
            if kind == .direct {
                guard op.n == 1, op.role == .admin else { throw refuse("a direct conversation adds its one other party, as op 1, as admin") }
            }
            members[op.target] = Member(role: op.role, fingerprint: op.targetFingerprint)
        case .remove:
            guard kind == .group else { throw refuse("nobody is removed from a direct conversation; they leave") }
            guard isAdmin else { throw refuse("only admins remove members") }
            guard op.target != op.actor else { throw refuse("members leave rather than remove themselves") }
            guard let target, target.fingerprint == op.targetFingerprint else { throw refuse("the target is not a member with that key") }
            members[op.target] = nil
        case .role:
            guard kind == .group else { throw refuse("roles are fixed in a direct conversation") }
            guard isAdmin else { throw refuse("only admins change roles") }
            guard op.target != op.actor else { throw refuse("admins do not change their own role") }
            guard let target, target.fingerprint == op.targetFingerprint else { throw refuse("the target is not a member with that key") }
            guard target.role != op.role else { throw refuse("the member already has that role") }
            members[op.target] = Member(role: op.role, fingerprint: target.fingerprint)
        case .settings:
            guard isAdmin else { throw refuse("only admins change settings") }
            guard op.settings!.kind == kind else { throw refuse("a conversation's kind never changes") }
            settings = op.settings!
        case .leave:
            let otherAdmins = members.filter { $0.key != op.actor && $0.value.role == .admin }.count
            guard !(isAdmin && otherAdmins == 0 && members.count > 1) else {
                throw refuse("the last admin makes someone else admin before leaving")
            }
            members[op.actor] = nil
        }
        for (userId, _) in self.members where members[userId] == nil {
            if var list = stays[userId], !list.isEmpty {
                list[list.count - 1].until = op.n
                stays[userId] = list
            }
        }
        for (userId, _) in members where self.members[userId] == nil {
            stays[userId, default: []].append(Stay(from: op.n, until: nil, fingerprint: members[userId]?.fingerprint))
        }
        self.members = members
        self.settings = settings
        ops.append(signed)
        hashes.append(signed.hash)
    }

    /// Takes ops as the server lists them: ones already known must be byte-identical (else the
    /// server showed two histories: a fork), new ones are appended in order under every rule.
    public mutating func extend(with listed: [SignedOp], identity: (String) throws -> [UInt8]) throws {
        for signed in listed {
            let op = try MembershipOp(bytes: signed.bytes)
            if op.n <= head {
                guard op.n >= firstKnown else { continue }
                guard signed.hash == hashes[Int(op.n - firstKnown)] else {
                    throw ProtocolError.fork("op \(op.n) differs from the one this device verified before")
                }
                continue
            }
            if op.n == head + 1, op.prevHash != epoch {
                throw ProtocolError.fork("op \(op.n) does not follow the op \(head) this device verified")
            }
            try append(signed, actorIdentity: try identity(op.actor))
        }
    }
}
