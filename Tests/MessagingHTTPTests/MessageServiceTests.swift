import CircleCore
import CircleKit
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import CleanupCore
import Crypto
import Foundation
import SQLKit
import Testing

@Suite("Messages, envelopes, read markers and expiry on the server")
struct MessageServiceTests {
    @Test("two members exchange end-to-end encrypted messages: the receiver verifies the chain, opens the envelope and decrypts", arguments: Engine.available)
    func endToEnd(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            var sending = SenderChain.fresh()
            let start = sending
            let envelopes = try await api.call("POST", "/api/v1/conversations/\(conv)/envelopes", json: try ana.envelopes(for: sending, membership: chain, members: [ana, ben]), token: ana.token)
            #expect(envelopes.status == 201)
            let texts = ["hello ben", "second", "third"]
            for text in texts {
                let reply = try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(try ana.seal(text, chain: chain, sender: &sending)), token: ana.token)
                #expect(reply.status == 201)
            }
            // Nothing stored is plaintext.
            let stored = try await store.read { db in try await db.raw("SELECT ciphertext FROM messages").all().map { Array(try $0.decode(column: "ciphertext", as: Data.self)) } }
            #expect(stored.count == 3)
            #expect(stored.allSatisfy { blob in !texts.contains { String(decoding: blob, as: UTF8.self).contains($0) } })

            // Ben, as a client: the ops from the server verify; the envelope from his events opens;
            // each message checks and decrypts in order.
            let opsReply = try await api.call("GET", "/api/v1/conversations/\(conv)/ops", token: ben.token)
            let ops = try #require(TestJSON.value(opsReply.body, path: ["ops"]) as? [[String: Any]]).map {
                SignedOp(bytes: try Wire.bytes($0, "op"), signature: try Wire.bytes($0, "signature"))
            }
            var bensChain = try MembershipChain(genesis: ops[0], creatorIdentity: ana.identityPublic)
            try bensChain.extend(with: ops, identity: { _ in ana.identityPublic })
            // His event log names the envelope (none of its bytes); he fetches it by epoch and sender.
            let delivered = try await api.events(ben.token, type: "envelope.new")
            #expect(delivered.count == 1)
            let reference = try #require(delivered.first)
            #expect(reference["ciphertext"] == nil && reference["enc"] == nil)
            #expect(try await api.events(ben.token, type: "message.new").isEmpty, "messages are not copied into event logs")
            let epochText = try #require(reference["epoch"] as? String)
            let listed = try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes?epoch=\(epochText)&sender=\(ana.id)", token: ben.token)
            let wire = try #require((TestJSON.value(listed.body, path: ["envelopes"]) as? [[String: Any]])?.first)
            let address = EnvelopeAddress(convId: bensChain.convId, epoch: try Wire.bytes(wire, "epoch"), sender: try #require(wire["sender"] as? String),
                                          deviceId: try Wire.bytes(wire, "deviceId"), generation: UInt32(try #require(wire["generation"] as? Int)), recipient: ben.id)
            #expect(address.epoch == bensChain.epoch)
            let envelope = Envelope(address: address, enc: try Wire.bytes(wire, "enc"), ciphertext: try Wire.bytes(wire, "ciphertext"), signature: try Wire.bytes(wire, "signature"))
            let receiving = try envelope.open(senderIdentity: ana.identityPublic, recipient: ben.account.agreement)
            #expect(receiving == start)
            var replay = ReplayWindow()
            var read: [String] = []
            let page = try await api.call("GET", "/api/v1/conversations/\(conv)/messages?after=0", token: ben.token)
            for data in try #require(TestJSON.value(page.body, path: ["messages"]) as? [[String: Any]]) {
                let sealed = MessageSeal.Sealed(header: try Wire.bytes(data, "header"), ciphertext: try Wire.bytes(data, "ciphertext"), signature: try Wire.bytes(data, "signature"))
                let header = try MessageHeader(bytes: sealed.header)
                #expect(bensChain.knows(epoch: header.epoch) && bensChain.isMember(header.senderUserId))
                let opened = try MessageSeal.open(sealed, senderIdentity: ana.identityPublic, chain: receiving, replay: replay)
                _ = replay.insert(opened.header.chainIndex)
                read.append(String(decoding: try MessagePadding.unpad(opened.padded).content, as: UTF8.self))
            }
            #expect(read == texts)
            // Ben can fetch only his own envelopes; Ana's copy is hers.
            let bensEnvelopes = try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes", token: ben.token)
            #expect((TestJSON.value(bensEnvelopes.body, path: ["envelopes"]) as? [[String: Any]])?.map { $0["recipient"] as? String } == [ben.id])
        }
    }

    @Test("message ids are idempotent; header fields are checked; size limits; edits and deletes only by the author", arguments: Engine.available)
    func messages(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cy = try await Member.register("cyd", on: api)
            var (conv, chain) = try await ana.create(with: [ben, cy], on: api)
            func send(_ sealed: MessageSeal.Sealed, as member: Member) async throws -> HTTPProbe.Reply {
                try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(sealed), token: member.token)
            }
            func messageCount() async throws -> Int {
                try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM messages").first()!.decode(column: "n", as: Int.self) }
            }
            var anas = SenderChain.fresh()
            let first = try ana.seal("first", chain: chain, sender: &anas)
            let sent = try await send(first, as: ana)
            #expect(sent.status == 201 && TestJSON.int(sent.body, path: ["seq"]) == 1)
            // The same bytes again: one message, the same answer.
            let again = try await send(first, as: ana)
            #expect(again.status == 200 && TestJSON.int(again.body, path: ["seq"]) == 1 && TestJSON.value(again.body, path: ["duplicate"]) as? Bool == true)
            // The same id with other bytes: refused.
            let header = try MessageHeader(bytes: first.header)
            let clash = try ana.seal("other", chain: chain, sender: &anas, messageId: header.messageId)
            let clashReply = try await send(clash, as: ana)
            #expect(clashReply.status == 409 && clashReply.body.contains("message-id-conflict"))
            #expect(try await messageCount() == 1)

            // Header checks: someone else's name as sender, another conversation, bad sizes.
            var bens = SenderChain.fresh()
            let asBen = try ben.seal("by ben", chain: chain, sender: &bens)
            #expect(try await send(asBen, as: cy).status == 403)
            var elsewhere = try MessageHeader(bytes: asBen.header)
            elsewhere.convId = SecureRandom.bytes(32)
            #expect(try await send(.init(header: elsewhere.bytes, ciphertext: asBen.ciphertext, signature: asBen.signature), as: ben).status == 422)
            #expect(try await send(.init(header: [1, 2, 3], ciphertext: asBen.ciphertext, signature: asBen.signature), as: ben).status == 422)
            #expect(try await send(.init(header: asBen.header, ciphertext: [UInt8](repeating: 0, count: 20), signature: asBen.signature), as: ben).status == 422)
            #expect(try await send(.init(header: asBen.header, ciphertext: asBen.ciphertext, signature: [1]), as: ben).status == 422)
            let huge = Wire.json(["header": Base64URL.encode(asBen.header), "ciphertext": Base64URL.encode([UInt8](repeating: 0, count: 200_000)), "signature": Base64URL.encode(asBen.signature)])
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: huge, token: ben.token).status == 422)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: "{\"header\":1}", token: ben.token).status == 400)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: "not json", token: ben.token).status == 400)
            #expect(try await messageCount() == 1)
            #expect(try await send(asBen, as: ben).status == 201)

            // Edits and deletes: only the author's, of an existing message.
            let edit = try cy.seal("edited", chain: chain, sender: &anas, kind: .edit, refersTo: header.messageId)
            #expect(try await send(edit, as: cy).status == 403)
            let realEdit = try ana.seal("first, edited", chain: chain, sender: &anas, kind: .edit, refersTo: header.messageId)
            #expect(try await send(realEdit, as: ana).status == 201)
            let dangling = try ana.seal("x", chain: chain, sender: &anas, kind: .delete, refersTo: SecureRandom.bytes(16))
            #expect(try await send(dangling, as: ana).status == 422)
            let delete = try ana.seal("", chain: chain, sender: &anas, kind: .delete, refersTo: header.messageId)
            #expect(try await send(delete, as: ana).status == 201)
            let page = try await api.call("GET", "/api/v1/conversations/\(conv)/messages?after=0", token: cy.token)
            let messages = try #require(TestJSON.value(page.body, path: ["messages"]) as? [[String: Any]])
            #expect(messages.count == 4)
            #expect(messages[0]["deleted"] as? Bool == true && messages[0]["ciphertext"] as? String == "")
            #expect(messages[2]["deleted"] as? Bool == true, "the edit of a deleted message goes too")
            #expect(try await send(delete, as: ana).status == 200, "a repeated delete is the same message")

            // After a membership change the old epoch is refused: every sender starts a new chain.
            let remove = try ana.op(chain, .remove, target: cy)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(remove), token: ana.token).status == 201)
            let stale = try ben.seal("old epoch", chain: chain, sender: &bens)
            let staleReply = try await send(stale, as: ben)
            #expect(staleReply.status == 409 && staleReply.body.contains("stale-epoch"))
            try chain.append(remove, actorIdentity: ana.identityPublic)
            var fresh = SenderChain.fresh()
            #expect(try await send(try ben.seal("new epoch", chain: chain, sender: &fresh), as: ben).status == 201)
            // Cy, removed, cannot send or read.
            #expect(try await send(try cy.seal("still here?", chain: chain, sender: &fresh), as: cy).status == 404)
            // Paging and bad query values.
            let paged = try await api.call("GET", "/api/v1/conversations/\(conv)/messages?after=1&limit=2", token: ben.token)
            #expect((TestJSON.value(paged.body, path: ["messages"]) as? [Any])?.count == 2 && TestJSON.value(paged.body, path: ["more"]) as? Bool == true)
            #expect(try await api.call("GET", "/api/v1/conversations/\(conv)/messages?limit=0", token: ben.token).status == 422)
            #expect(try await api.call("GET", "/api/v1/conversations/\(conv)/messages?after=x", token: ben.token).status == 422)
        }
    }

    @Test("envelopes: only to members, at the current epoch, signed by the caller; a different second envelope is refused", arguments: Engine.available)
    func envelopes(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let eve = try await Member.register("eve", on: api)
            var (conv, chain) = try await ana.create(with: [ben], on: api)
            func post(_ body: String, as member: Member) async throws -> HTTPProbe.Reply {
                try await api.call("POST", "/api/v1/conversations/\(conv)/envelopes", json: body, token: member.token)
            }
            let sending = SenderChain.fresh()
            let body = try ana.envelopes(for: sending, membership: chain, members: [ana, ben])
            #expect(try await post(body, as: ana).status == 201)
            #expect(try await post(body, as: ana).status == 200, "the same envelopes again are a repeat")
            // A second, different chain key for the same chain: refused, nothing changes.
            let conflicting = try ana.envelopes(for: SenderChain.fresh(), membership: chain, members: [ben])
            let conflict = try await post(conflicting, as: ana)
            #expect(conflict.status == 409 && conflict.body.contains("envelope-conflict"))
            // A new generation is a new chain: accepted.
            #expect(try await post(try ana.envelopes(for: SenderChain.fresh(), membership: chain, members: [ben], generation: 1), as: ana).status == 201)
            // Posted by someone other than the signer (the address names the caller as sender).
            #expect(try await post(body, as: ben).status == 422)
            // To a non-member: Eve's key is valid but she is not in the conversation.
            let toEve = EnvelopeAddress(convId: chain.convId, epoch: chain.epoch, sender: ana.id, deviceId: ana.deviceId, generation: 5, recipient: eve.id)
            let eveEnvelope = try Envelope.seal(chainKey: sending.chainKey, startIndex: 0, to: Array(eve.account.agreement.publicKey.rawRepresentation), address: toEve, signer: ana.account.identity)
            #expect(try await post(Wire.envelopes([eveEnvelope]), as: ana).status == 422)
            // Bad shapes.
            #expect(try await post("{\"envelopes\":[]}", as: ana).status == 422)
            #expect(try await post("{\"envelopes\":[{\"epoch\":\"AA\"}]}", as: ana).status == 400)
            let count = try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM key_envelopes").first()!.decode(column: "n", as: Int.self) }
            #expect(count == 3)
            // After a membership change, envelopes for the old epoch are refused.
            let add = try ana.op(chain, .add, target: eve, role: .member)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(add), token: ana.token).status == 201)
            let old = try ana.envelopes(for: SenderChain.fresh(), membership: chain, members: [ben], generation: 9)
            #expect(try await post(old, as: ana).status == 409)
            try chain.append(add, actorIdentity: ana.identityPublic)
            #expect(try await post(try ana.envelopes(for: SenderChain.fresh(), membership: chain, members: [ben, eve]), as: ana).status == 201)
            // Eve, now a member, sees only envelopes addressed to her, none from before she joined.
            let evesList = try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes", token: eve.token)
            let evesEnvelopes = try #require(TestJSON.value(evesList.body, path: ["envelopes"]) as? [[String: Any]])
            #expect(evesEnvelopes.count == 1 && evesEnvelopes.allSatisfy { $0["recipient"] as? String == eve.id && $0["epoch"] as? String == Base64URL.encode(chain.epoch) })
            #expect(try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes?epoch=zz", token: eve.token).status == 422)
        }
    }

    @Test("read markers: unread counts; a member with receipts off neither sends nor sees them; the signed setting turns them off for all", arguments: Engine.available)
    func reads(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cy = try await Member.register("cyd", on: api)
            var (conv, chain) = try await ana.create(with: [ben, cy], on: api)
            var anas = SenderChain.fresh()
            for text in ["one", "two", "three"] {
                #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(try ana.seal(text, chain: chain, sender: &anas)), token: ana.token).status == 201)
            }
            func unread(_ member: Member) async throws -> Int? {
                let list = try await api.call("GET", "/api/v1/conversations", token: member.token)
                return ((TestJSON.value(list.body, path: ["conversations"]) as? [[String: Any]])?.first?["unread"] as? NSNumber)?.intValue
            }
            func readers(as member: Member) async throws -> Set<String> {
                let reply = try await api.call("GET", "/api/v1/conversations/\(conv)/reads", token: member.token)
                return Set((TestJSON.value(reply.body, path: ["reads"]) as? [[String: Any]] ?? []).compactMap { $0["userId"] as? String })
            }
            #expect(try await unread(ben) == 3)
            #expect(try await unread(ana) == 0)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/read", json: "{\"seq\":2}", token: ben.token).status == 204)
            #expect(try await unread(ben) == 1)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/read", json: "{\"seq\":9}", token: ben.token).status == 422)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/read", json: "{\"seq\":1}", token: ben.token).status == 204)
            #expect(try await unread(ben) == 1, "markers only move forward")
            #expect(try await readers(as: ana) == [ben.id])
            #expect(try await api.events(ana.token, type: "conversation.read").count == 1)

            // Cy turns receipts off: she neither sends nor sees them.
            #expect(try await api.events(cy.token, type: "conversation.read").map { $0["userId"] as? String } == [ben.id])
            #expect(try await api.call("PUT", "/api/v1/conversations/\(conv)/preferences", json: "{\"readReceipts\":false}", token: cy.token).status == 204)
            #expect(try await api.call("PUT", "/api/v1/conversations/\(conv)/preferences", json: "{\"readReceipts\":\"no\"}", token: cy.token).status == 400)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/read", json: "{\"seq\":3}", token: cy.token).status == 204)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/read", json: "{\"seq\":3}", token: ben.token).status == 204)
            #expect(try await readers(as: ana) == [ben.id])
            #expect(try await readers(as: cy) == [cy.id])
            // Cy's own devices hear of her marker; she hears nothing of Ben's new one.
            #expect(try await api.events(cy.token, type: "conversation.read").map { $0["userId"] as? String } == [ben.id, cy.id])
            #expect(try await api.events(ana.token, type: "conversation.read").map { $0["userId"] as? String } == [ben.id, ben.id])

            // The admin's signed setting turns receipts off for everyone.
            let settings = try ana.op(chain, .settings, settings: .init(kind: .group, readReceipts: false))
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(settings), token: ana.token).status == 201)
            try chain.append(settings, actorIdentity: ana.identityPublic)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/read", json: "{\"seq\":3}", token: ana.token).status == 204)
            #expect(try await readers(as: ana) == [ana.id])
            #expect(try await readers(as: ben) == [ben.id])
            #expect(try await api.events(ben.token, type: "conversation.read").map { $0["userId"] as? String } == [ben.id, ben.id])
        }
    }

    @Test("disappearing messages: expiry must follow the signed timer, expired ones are never served, and two sweepers delete each once", arguments: Engine.available)
    func expiry(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], settings: .init(kind: .group, disappearSeconds: 60), on: api)
            var anas = SenderChain.fresh()
            func send(expiresAt: Int64) async throws -> Int {
                let sealed = try ana.seal("soon gone", chain: chain, sender: &anas, expiresAt: UInt64(max(0, expiresAt)))
                return try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(sealed), token: ana.token).status
            }
            let now = Timestamp.now().millis
            #expect(try await send(expiresAt: 0) == 422, "the timer is on: an expiry is required")
            #expect(try await send(expiresAt: now + 3_600_000) == 422, "later than the timer allows")
            #expect(try await send(expiresAt: now - 1000) == 422, "already expired")
            // Each expiry a minute after its own send (a loaded machine may take a while over 30 sends).
            for _ in 0..<30 { #expect(try await send(expiresAt: Timestamp.now().millis + 60_000) == 201) }
            func served() async throws -> Int {
                let page = try await api.call("GET", "/api/v1/conversations/\(conv)/messages?limit=500", token: ben.token)
                return (TestJSON.value(page.body, path: ["messages"]) as? [Any])?.count ?? -1
            }
            #expect(try await served() == 30)
            // Some expire (the server's own clock is real, so those rows are aged): never served.
            try await store.write { db in try await db.raw("UPDATE messages SET expires_at = \(bind: Timestamp.now().millis - 1) WHERE seq <= 5").run() }
            #expect(try await served() == 25)
            // The aged ones go at the next sweep: this test's or the server's own (every 5 s,
            // real clock), whichever comes first; wait until they are gone so that the server's
            // sweeper has nothing left that it could take during the race below.
            let count = { try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM messages").first()!.decode(column: "n", as: Int.self) } }
            let deadline = ContinuousClock.now + .seconds(15)
            while try await count() > 25, ContinuousClock.now < deadline {
                try await ExpiredMessageSweeper(store: store, clock: SystemWallClock(), logger: TestServers.quietLogger).sweep()
                try await Task.sleep(for: .milliseconds(50))
            }
            let present = try await count()
            #expect(present == 25)
            // Two minutes later (the sweepers' clock is injected) all have expired: two sweepers
            // running at once in small batches delete each exactly once.
            let later = FixedClock(Timestamp(millis: Timestamp.now().millis + 120_000))
            let logger = TestServers.quietLogger
            async let a = ExpiredMessageSweeper(store: store, clock: later, logger: logger, batch: 3).sweep()
            async let b = ExpiredMessageSweeper(store: store, clock: later, logger: logger, batch: 3).sweep()
            let (deletedA, deletedB) = try await (a, b)
            #expect(deletedA + deletedB == present)
            #expect(try await count() == 0)
            #expect(try await ExpiredMessageSweeper(store: store, clock: later, logger: logger).sweep() == 0)
        }
    }
}
