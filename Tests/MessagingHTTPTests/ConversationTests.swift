import CircleCore
import CircleKit
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing

@Suite("Conversations and the membership chain on the server")
struct ConversationTests {
    @Test("a non-member learns nothing: 404 on every endpoint; no token: 401", arguments: Engine.available)
    func authorization(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let eve = try await Member.register("eve", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            var sender = SenderChain.fresh()
            let message = try ana.seal("hi", chain: chain, sender: &sender)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(message), token: ana.token).status == 201)

            let endpoints: [(String, String, String?)] = [
                ("GET", "", nil), ("GET", "/ops", nil), ("POST", "/ops", Wire.append(try eve.op(chain, .leave, target: eve))),
                ("GET", "/messages", nil), ("POST", "/messages", Wire.message(try eve.seal("x", chain: chain, sender: &sender))),
                ("GET", "/envelopes", nil), ("POST", "/envelopes", try eve.envelopes(for: sender, membership: chain, members: [ana])),
                ("POST", "/read", "{\"seq\":1}"), ("GET", "/reads", nil), ("PUT", "/preferences", "{\"readReceipts\":false}"),
            ]
            for (method, path, body) in endpoints {
                let outsider = try await api.call(method, "/api/v1/conversations/\(conv)\(path)", json: body, token: eve.token)
                #expect(outsider.status == 404, "\(method) \(path) as a non-member: \(outsider.body)")
                #expect(!outsider.body.contains(ana.id) && !outsider.body.contains(ben.id))
                let anonymous = try await api.call(method, "/api/v1/conversations/\(conv)\(path)", json: body)
                #expect(anonymous.status == 401, "\(method) \(path) without a token")
                let unknown = try await api.call(method, "/api/v1/conversations/\(Base64URL.encode(SecureRandom.bytes(32)))\(path)", json: body, token: ana.token)
                #expect(unknown.status == 404, "\(method) \(path) of an unknown conversation")
            }
            let list = try await api.call("GET", "/api/v1/conversations", token: eve.token)
            #expect(TestJSON.value(list.body, path: ["conversations"]) as? [Any] != nil)
            #expect(!list.body.contains(conv))
            // Members see it.
            let detail = try await api.call("GET", "/api/v1/conversations/\(conv)", token: ben.token)
            #expect(detail.status == 200)
            let members = try #require(TestJSON.value(detail.body, path: ["members"]) as? [[String: Any]])
            #expect(Set(members.compactMap { $0["userId"] as? String }) == [ana.id, ben.id])
        }
    }

    @Test("ops: only on top of the head, only by admins, signed by the caller, naming published keys; refusals change nothing", arguments: Engine.available)
    func ops(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cy = try await Member.register("cyd", on: api)
            let eve = try await Member.register("eve", on: api)
            var (conv, chain) = try await ana.create(with: [ben], on: api)
            func post(_ op: SignedOp, as member: Member) async throws -> HTTPProbe.Reply {
                try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(op), token: member.token)
            }
            func opCount() async throws -> Int {
                try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM membership_ops").first()!.decode(column: "n", as: Int.self) }
            }
            let before = try await opCount()
            // A member who is not an admin.
            let byBen = try await post(try ben.op(chain, .add, target: cy, role: .member), as: ben)
            #expect(byBen.status == 422 && byBen.body.contains("refused-op"))
            // Signed by Ana but sent by Ben, or signed by Ben and claiming Ana.
            #expect(try await post(try ana.op(chain, .add, target: cy, role: .member), as: ben).status == 403)
            var forged = chain.nextOp(actor: ana.id, action: .add, createdAt: UInt64(Timestamp.now().millis))
            forged.target = cy.id
            forged.targetFingerprint = cy.fingerprint
            forged.role = .member
            let forgedReply = try await post(try ben.sign(forged), as: ana)
            #expect(forgedReply.status == 422 && forgedReply.body.contains("bad-signature"))
            // A fingerprint other than the directory's key (a swapped identity key).
            var swapped = chain.nextOp(actor: ana.id, action: .add, createdAt: UInt64(Timestamp.now().millis))
            swapped.target = cy.id
            swapped.targetFingerprint = eve.fingerprint
            swapped.role = .member
            #expect(try await post(try ana.sign(swapped), as: ana).status == 422)
            // Not on top of the head.
            var stale = chain.nextOp(actor: ana.id, action: .add, createdAt: UInt64(Timestamp.now().millis))
            stale.prevHash = chain.convId
            stale.target = cy.id
            stale.targetFingerprint = cy.fingerprint
            stale.role = .member
            let staleReply = try await post(try ana.sign(stale), as: ana)
            #expect(staleReply.status == 409 && staleReply.body.contains("stale-head"))
            // Malformed bodies.
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: "{\"op\":\"!!\",\"signature\":\"AA\"}", token: ana.token).status == 422)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: "{\"op\":\"AA\"}", token: ana.token).status == 400)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.json(["op": Base64URL.encode([1, 2, 3]), "signature": Base64URL.encode([UInt8](repeating: 0, count: 64))]), token: ana.token).status == 422)
            #expect(try await opCount() == before, "refused ops stored nothing")

            // A good op goes through; everyone concerned hears of it.
            let add = try ana.op(chain, .add, target: cy, role: .member)
            let added = try await post(add, as: ana)
            #expect(added.status == 201)
            try chain.append(add, actorIdentity: ana.identityPublic)
            #expect(TestJSON.string(added.body, path: ["epoch"]) == Base64URL.encode(chain.epoch))
            #expect(try await api.events(cy.token, type: "conversation.op").count == 1)
            // Replaying the same op is now stale.
            #expect(try await post(add, as: ana).status == 409)
            // The listed ops verify from the genesis and give the same chain.
            let listed = try await api.call("GET", "/api/v1/conversations/\(conv)/ops", token: cy.token)
            let ops = try #require(TestJSON.value(listed.body, path: ["ops"]) as? [[String: Any]]).map {
                SignedOp(bytes: try Wire.bytes($0, "op"), signature: try Wire.bytes($0, "signature"))
            }
            var replayed = try MembershipChain(genesis: ops[0], creatorIdentity: ana.identityPublic)
            try replayed.extend(with: ops, identity: { _ in ana.identityPublic })
            #expect(replayed == chain)

            // Removal: Ben is told and loses access; a removed member is a non-member.
            let remove = try ana.op(chain, .remove, target: ben)
            #expect(try await post(remove, as: ana).status == 201)
            try chain.append(remove, actorIdentity: ana.identityPublic)
            #expect(try await api.events(ben.token, type: "conversation.op").count == 2)
            #expect(try await api.call("GET", "/api/v1/conversations/\(conv)", token: ben.token).status == 404)
            // Cy leaves by herself.
            #expect(try await post(try cy.op(chain, .leave, target: cy), as: cy).status == 201)
        }
    }

    @Test("integers: an op or message whose u64 is beyond 2^53 - 1, or whose time is more than a day off the server's clock, is refused and changes nothing", arguments: Engine.available)
    func integerBounds(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cy = try await Member.register("cyd", on: api)
            let (conv, chain) = try await ana.create(with: [ben, cy], on: api)
            func counts() async throws -> [Int] {
                try await store.read { db in
                    [try await db.raw("SELECT COUNT(*) AS n FROM membership_ops").first()!.decode(column: "n", as: Int.self),
                     try await db.raw("SELECT COUNT(*) AS n FROM messages").first()!.decode(column: "n", as: Int.self)]
                }
            }
            let before = try await counts()
            let now = UInt64(Timestamp.now().millis)
            // Ben's leave with a time no browser can read (it made conversations unreadable).
            for (createdAt, why) in [(UInt64(1) << 60, "u64 beyond 2^53 - 1"), (ProtocolBounds.maximumInteger + 1, "u64 beyond 2^53 - 1"),
                                     (now + 2 * 86_400_000, "within a day"), (now - 2 * 86_400_000, "within a day")] {
                var leave = chain.nextOp(actor: ben.id, action: .leave, createdAt: createdAt)
                leave.target = ben.id
                let reply = try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(try ben.sign(leave)), token: ben.token)
                #expect(reply.status == 422 && reply.body.contains(why), "\(createdAt): \(reply.status) \(reply.body)")
            }
            var genesis = MembershipOp.genesis(creator: ana.id, creatorIdentity: ana.identityPublic, settings: .init(kind: .group), createdAt: UInt64(1) << 62)
            let created = try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: try ana.sign(genesis), ops: []), token: ana.token)
            #expect(created.status == 422 && created.body.contains("u64 beyond"), "\(created.body)")
            genesis.createdAt = now + 3 * 86_400_000
            #expect(try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: try ana.sign(genesis), ops: []), token: ana.token).status == 422)
            // Messages: a time beyond 2^53 - 1 does not parse; one days off is refused.
            var anas = SenderChain.fresh()
            for sentAt in [UInt64(1) << 60, now + 2 * 86_400_000] {
                let sealed = try ana.seal("when?", chain: chain, sender: &anas, sentAt: sentAt)
                #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(sealed), token: ana.token).status == 422)
            }
            #expect(try await counts() == before)
            // The leave with the right time goes through.
            var leave = chain.nextOp(actor: ben.id, action: .leave, createdAt: now)
            leave.target = ben.id
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(try ben.sign(leave)), token: ben.token).status == 201)
        }
    }

    @Test("creation: direct conversations take one other party; every op is the creator's; bad genesis refused", arguments: Engine.available)
    func creation(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cy = try await Member.register("cyd", on: api)
            let (direct, chain) = try await ana.create(.direct, with: [ben], on: api)
            #expect(chain.members.count == 2)
            // No third party in a direct conversation, later or at creation.
            let third = try await api.call("POST", "/api/v1/conversations/\(direct)/ops", json: Wire.append(try ana.op(chain, .add, target: cy, role: .admin)), token: ana.token)
            #expect(third.status == 422)
            let genesis = try ana.sign(.genesis(creator: ana.id, creatorIdentity: ana.identityPublic, settings: .init(kind: .direct), createdAt: UInt64(Timestamp.now().millis)))
            var building = try MembershipChain(genesis: genesis, creatorIdentity: ana.identityPublic)
            let first = try ana.op(building, .add, target: ben, role: .admin)
            try building.append(first, actorIdentity: ana.identityPublic)
            let second = try ana.op(building, .add, target: cy, role: .admin)
            #expect(try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: genesis, ops: [first, second]), token: ana.token).status == 422)
            // Someone else's genesis, and a genesis claiming another key.
            #expect(try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: genesis, ops: []), token: ben.token).status == 403)
            let claiming = try ana.sign(.genesis(creator: ana.id, creatorIdentity: ben.identityPublic, settings: .init(kind: .group), createdAt: UInt64(Timestamp.now().millis)))
            #expect(try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: claiming, ops: []), token: ana.token).status == 422)
            let conversations = try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM conversations").first()!.decode(column: "n", as: Int.self) }
            #expect(conversations == 1)
            // The same genesis twice is one conversation.
            #expect(try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: genesis, ops: [first]), token: ana.token).status == 201)
            #expect(try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: genesis, ops: [first]), token: ana.token).status == 409)
            // Both parties hear of the new conversation.
            #expect(try await api.events(ben.token, type: "conversation.created").count == 2)
            let listed = try await api.call("GET", "/api/v1/conversations", token: ben.token)
            #expect((TestJSON.value(listed.body, path: ["conversations"]) as? [Any])?.count == 2)
        }
    }
}
