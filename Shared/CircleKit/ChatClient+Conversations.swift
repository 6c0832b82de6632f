import CircleCore
import CircleProtocol
import Crypto
import Foundation

extension ChatClient {
    // MARK: Conversations and their chains

    public func conversations() async throws -> [APITypes.Summary] {
        try requireSession()
        return try await api.call(.GET, "/api/v1/conversations", as: APITypes.SummaryList.self).conversations
    }

    /// Creates a direct conversation with one contact or a group; every member's key is pinned
    /// (or checked against its pin) before it is named in an op.
    public func createConversation(_ kind: ConversationSettings.Kind, with usernames: [String], disappearSeconds: UInt32 = 0, readReceipts: Bool = true) async throws -> String {
        try requireSession()
        guard kind == .group || usernames.count == 1 else { throw ProtocolError.refused("a direct conversation has exactly one other member") }
        let identity = try identityKey()
        let mine = Array(identity.publicKey.rawRepresentation)
        let now = UInt64(Timestamp.now().millis)
        // A fresh nonce until the id does not start with "-", so it can be typed as a command
        // line argument (see `Base64URL.isCommandLineSafe`).
        var unsigned: MembershipOp
        repeat {
            unsigned = MembershipOp.genesis(creator: state.userId, creatorIdentity: mine,
                                            settings: .init(kind: kind, disappearSeconds: disappearSeconds, readReceipts: readReceipts), createdAt: now)
        } while !Base64URL.isCommandLineSafe(MembershipOp.hash(unsigned.bytes))
        let genesis = try unsigned.sign(with: identity)
        var chain = try MembershipChain(genesis: genesis, creatorIdentity: mine)
        var ops: [SignedOp] = []
        for username in usernames {
            let entry = try await entry(username: username)
            guard entry.userId != state.userId else { continue }
            let keys = try await sealingKeys(entry.userId)
            var op = chain.nextOp(actor: state.userId, action: .add, createdAt: now)
            op.target = entry.userId
            op.targetFingerprint = IdentityFingerprint.of(keys.identity)
            op.role = kind == .direct ? .admin : .member
            let signed = try op.sign(with: identity)
            try chain.append(signed, actorIdentity: mine)
            ops.append(signed)
        }
        let created: APITypes.Created = try await api.call(.POST, "/api/v1/conversations",
                                                           body: APITypes.Create(genesis: .init(genesis), ops: ops.map(APITypes.WireOp.init)))
        state.conversations[created.conversationId] = DeviceState.ConversationState(ops: chain.ops.map(DeviceState.StoredOp.init))
        chains[created.conversationId] = chain
        try save()
        return created.conversationId
    }

    /// Adds a member (admins only; the server and every member check the op).
    public func add(_ username: String, to conversation: String, role: MembershipOp.Role = .member) async throws {
        let entry = try await entry(username: username)
        let keys = try await sealingKeys(entry.userId)
        try await appendOp(conversation) { op, _ in
            op.action = .add
            op.target = entry.userId
            op.targetFingerprint = IdentityFingerprint.of(keys.identity)
            op.role = role
        }
    }

    /// Removes a member: their key is no longer sealed to, and everyone's next message is on a new chain.
    public func remove(_ username: String, from conversation: String) async throws {
        let entry = try await entry(username: username)
        let chain = try await self.chain(conversation)
        guard let member = chain.members[entry.userId] else { throw ProtocolError.refused("\(username) is not a member") }
        try await appendOp(conversation) { op, _ in
            op.action = .remove
            op.target = entry.userId
            op.targetFingerprint = member.fingerprint
        }
    }

    /// Changes the disappearing timer, receipts or retention (admins only); nil keeps a setting.
    /// Returns the settings now in force.
    @discardableResult
    public func setSettings(_ conversation: String, disappearSeconds: UInt32? = nil, readReceipts: Bool? = nil,
                            retentionDays: UInt16? = nil) async throws -> ConversationSettings {
        var settings = try await self.chain(conversation).settings
        // Worked out on the head each attempt signs on: a retry after another admin's change
        // keeps that change for the settings not given here.
        try await appendOp(conversation) { op, chain in
            let current = chain.settings
            settings = ConversationSettings(kind: current.kind, disappearSeconds: disappearSeconds ?? current.disappearSeconds,
                                            readReceipts: readReceipts ?? current.readReceipts, retentionDays: retentionDays ?? current.retentionDays)
            op.action = .settings
            op.settings = settings
        }
        return settings
    }

    /// Signs the next op on the verified head and sends it; on a stale head, catches up and retries.
    func appendOp(_ conversation: String, _ fill: (inout MembershipOp, MembershipChain) -> Void) async throws {
        try requireSession()
        let identity = try identityKey()
        let mine = Array(identity.publicKey.rawRepresentation)
        for _ in 0..<3 {
            var chain = try await self.chain(conversation)
            var op = chain.nextOp(actor: state.userId, action: .settings, createdAt: UInt64(Timestamp.now().millis))
            fill(&op, chain)
            let signed = try op.sign(with: identity)
            var check = chain
            try check.append(signed, actorIdentity: mine)
            do {
                try await api.send(.POST, "/api/v1/conversations/\(conversation)/ops", body: APITypes.WireOp(signed))
            } catch let error as CircleAPIError where error.slug == "stale-head" {
                continue
            }
            try chain.append(signed, actorIdentity: mine)
            chains[conversation] = chain
            state.conversations[conversation, default: .init()].ops.append(DeviceState.StoredOp(signed))
            try save()
            return
        }
        throw ProtocolError.refused("the conversation kept changing; try again")
    }

    /// The conversation's chain, verified from its genesis and brought up to the server's head.
    /// Ops this device verified before must come back byte-identical, and the head never goes
    /// back: otherwise the fork alarm.
    public func chain(_ conversation: String) async throws -> MembershipChain {
        try requireSession()
        var chain = try await localChain(conversation)
        // From the op before the head: the head op itself must come back unchanged.
        var after = chain.map { Int64($0.head) - 1 } ?? -1
        var fresh: [SignedOp] = []
        while true {
            let page: APITypes.OpList = try await api.call(.GET, "/api/v1/conversations/\(conversation)/ops?after=\(after)")
            if let chain, page.head < Int64(chain.head) {
                throw ChatAlarm.fork("the server shows op \(page.head) as the head, but this device verified up to op \(chain.head)")
            }
            let ops = try page.ops.map { SignedOp(bytes: try Base64URL.bytes($0.op, "op"), signature: try Base64URL.bytes($0.signature, "signature")) }
            fresh += ops
            guard let last = page.ops.last, last.n < page.head else { break }
            after = last.n
        }
        if chain == nil {
            guard let genesis = fresh.first else { throw ProtocolError.malformed("the conversation has no genesis") }
            let op = try MembershipOp(bytes: genesis.bytes)
            chain = try MembershipChain(genesis: genesis, creatorIdentity: try await pinnedIdentity(op.actor))
            // The id is the genesis's hash: a server that lists another conversation's genesis
            // (or another genesis) under this id is caught here, before anything is sealed.
            guard Base64URL.encode(chain!.convId) == conversation else {
                throw ChatAlarm.fork("the genesis the server listed is not the one this conversation is named after")
            }
        }
        var verified = chain!
        for signed in fresh {
            let actor = try MembershipOp(bytes: signed.bytes).actor
            let key = try await pinnedIdentity(actor)
            do {
                try verified.extend(with: [signed], identity: { _ in key })
            } catch ProtocolError.fork(let why) {
                throw ChatAlarm.fork(why)
            }
        }
        if verified.head != chain!.head || state.conversations[conversation]?.ops.count != verified.ops.count {
            state.conversations[conversation, default: .init()].ops = verified.ops.map(DeviceState.StoredOp.init)
            try save()
        }
        chains[conversation] = verified
        return verified
    }

    /// The chain as this device last verified it (from memory, or replayed from the state file).
    func localChain(_ conversation: String) async throws -> MembershipChain? {
        if let chain = chains[conversation] { return chain }
        guard let stored = state.conversations[conversation]?.ops, let first = stored.first else { return nil }
        let genesis = first.signed
        var chain = try MembershipChain(genesis: genesis, creatorIdentity: try await pinnedIdentity(try MembershipOp(bytes: genesis.bytes).actor))
        for op in stored.dropFirst() {
            let key = try await pinnedIdentity(try MembershipOp(bytes: op.op.bytes).actor)
            try chain.append(op.signed, actorIdentity: key)
        }
        chains[conversation] = chain
        return chain
    }
}
