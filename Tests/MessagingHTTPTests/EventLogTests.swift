import CircleCore
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing

/// The per-user event log names its subjects and never copies a message: a deleted or expired
/// message's ciphertext is gone from every path the moment its row is, and a group message is
/// stored once whatever the member count.
@Suite("Event log: references, not copies")
struct EventLogTests {
    @Test("after a delete and an expiry, /sync, the socket's catch-up and a reconnecting socket never return either ciphertext", arguments: Engine.available)
    func goneEverywhere(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            var anas = SenderChain.fresh()
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/envelopes",
                                       json: try ana.envelopes(for: anas, membership: chain, members: [ana, ben]), token: ana.token).status == 201)
            // Ben is online and hears all three live.
            let (online, _) = try await TestSocket.authenticated(api.socketURL, token: ben.token, since: 0)
            let doomed = try ana.seal("delete me", chain: chain, sender: &anas)
            let fading = try ana.seal("expire me", chain: chain, sender: &anas)
            let kept = try ana.seal("keep me", chain: chain, sender: &anas)
            for sealed in [doomed, fading, kept] {
                #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(sealed), token: ana.token).status == 201)
            }
            var live: [String] = []
            while live.count < 3 {
                guard let frame = try await online.next() else { break }
                if frame.contains("\"message.new\"") { live.append(frame) }
            }
            #expect(live.count == 3)
            #expect(zip(live, [doomed, fading, kept]).allSatisfy { $0.contains(Base64URL.encode($1.ciphertext)) }, "live frames carry the messages, in order")
            online.close()

            // Ana deletes one; another expires (its row aged, as the clock would).
            let header = try MessageHeader(bytes: doomed.header)
            let delete = try ana.seal("", chain: chain, sender: &anas, kind: .delete, refersTo: header.messageId)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(delete), token: ana.token).status == 201)
            let fadingId = Base64URL.encode(try MessageHeader(bytes: fading.header).messageId)
            try await store.write { db in
                try await db.raw("UPDATE messages SET expires_at = \(bind: Timestamp.now().millis - 1) WHERE id = \(bind: fadingId)").run()
            }
            let gone = [Base64URL.encode(doomed.ciphertext), Base64URL.encode(fading.ciphertext)]
            let keptText = Base64URL.encode(kept.ciphertext)

            // /sync from the beginning: no message at all, so neither ciphertext.
            let sync = try await api.call("GET", "/api/v1/sync?since=0&limit=1000", token: ben.token)
            #expect(sync.status == 200)
            #expect(gone.allSatisfy { !sync.body.contains($0) } && !sync.body.contains(keptText))
            #expect(!sync.body.contains("\"message.new\""))

            // A socket catching up from 0, and one reconnecting from where it was: the stored
            // events, `ready`, and nothing of the messages.
            for since in [Int64(0), 1] {
                let socket = try await TestSocket.connect(api.socketURL)
                socket.send(TestSocket.authFrame(token: ben.token, since: since))
                var frames: [String] = []
                while let frame = try await socket.next() {
                    frames.append(frame)
                    if frame.contains("\"type\":\"ready\"") { break }
                }
                socket.close()
                #expect(frames.last?.contains("\"ready\"") == true)
                #expect(frames.allSatisfy { frame in gone.allSatisfy { !frame.contains($0) } }, "catch-up from \(since)")
            }

            // The conversation itself: the deleted one is a marker without ciphertext, the expired
            // one is not served, the kept one is.
            let page = try await api.call("GET", "/api/v1/conversations/\(conv)/messages?after=0", token: ben.token)
            #expect(gone.allSatisfy { !page.body.contains($0) })
            #expect(page.body.contains(keptText))
            // And nothing stored outside `messages` holds a copy.
            let logged = try await store.read { db in
                try await db.raw("SELECT payload FROM user_events").all().map { try $0.decode(column: "payload", as: String.self) }
            }
            #expect(logged.allSatisfy { payload in !gone.contains { payload.contains($0) } && !payload.contains(keptText) })
        }
    }

    @Test("one 4 KiB message to a 500-member group grows PostgreSQL by at most twice its size plus 64 bytes per member; a whole rotation is one request")
    func groupMessageStorage() async throws {
        guard Engine.available.contains(.postgres) else { return }
        try await ServerHarness(.postgres).run { api, store in
            let ana = try await Member.register("ana", on: api)
            var others: [Member] = []
            for index in 0..<499 { others.append(try await Member.register("member\(index)", on: api)) }
            let (conv, chain) = try await ana.create(with: others, on: api)
            var anas = SenderChain.fresh()
            let text = String(repeating: "x", count: 4000)
            // One message first, so the tables' first pages and the writer's statements exist.
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages",
                                       json: Wire.message(try ana.seal(text, chain: chain, sender: &anas)), token: ana.token).status == 201)
            func size() async throws -> Int64 {
                try await store.read { db in
                    try await db.raw("SELECT pg_database_size(current_database()) AS n").first()!.decode(column: "n", as: Int64.self)
                }
            }
            func events() async throws -> Int {
                try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM user_events").first()!.decode(column: "n", as: Int.self) }
            }
            let (before, eventsBefore) = (try await size(), try await events())
            let count = 40
            var sealedSize = 0
            for _ in 0..<count {
                let sealed = try ana.seal(text, chain: chain, sender: &anas)
                sealedSize = sealed.ciphertext.count + sealed.header.count + sealed.signature.count
                #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/messages", json: Wire.message(sealed), token: ana.token).status == 201)
            }
            let perMessage = (try await size() - before) / Int64(count)
            #expect(try await events() == eventsBefore, "no row per member")
            // A whole rotation for the largest group is one request: a new chain for every member.
            let rotation = try await api.call("POST", "/api/v1/conversations/\(conv)/envelopes",
                                              json: try ana.envelopes(for: SenderChain.fresh(), membership: chain, members: [ana] + others, generation: 1),
                                              token: ana.token)
            #expect(rotation.status == 201 && TestJSON.int(rotation.body, path: ["stored"]) == 500, "\(rotation.status) \(rotation.body.prefix(300))")
            let bound = Int64(2 * 4096 + 64 * 500)
            #expect(sealedSize > 4096)
            #expect(perMessage <= bound, "\(perMessage) bytes per message, bound \(bound)")
        }
    }

    @Test("envelopes are listed in pages that a client follows with `after`; a made-up cursor is refused", arguments: Engine.available)
    func envelopePages(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, chain) = try await ana.create(with: [ben], on: api)
            for generation in 0..<5 {
                #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/envelopes",
                                           json: try ana.envelopes(for: SenderChain.fresh(), membership: chain, members: [ben], generation: UInt32(generation)),
                                           token: ana.token).status == 201)
            }
            var generations: [Int] = []
            var after = ""
            var pages = 0
            while true {
                let reply = try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes?limit=2\(after)", token: ben.token)
                #expect(reply.status == 200)
                let listed = try #require(TestJSON.value(reply.body, path: ["envelopes"]) as? [[String: Any]])
                generations += listed.compactMap { ($0["generation"] as? NSNumber)?.intValue }
                pages += 1
                guard TestJSON.value(reply.body, path: ["more"]) as? Bool == true, let next = TestJSON.string(reply.body, path: ["next"]) else { break }
                after = "&after=\(next)"
            }
            #expect(pages == 3)
            #expect(generations.sorted() == [0, 1, 2, 3, 4] && Set(generations).count == 5, "each envelope once")
            for bad in ["x", Base64URL.encode(Array("1 2 3 4 5".utf8))] {
                #expect(try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes?after=\(bad)", token: ben.token).status == 422)
            }
            #expect(try await api.call("GET", "/api/v1/conversations/\(conv)/envelopes?limit=0", token: ben.token).status == 422)
        }
    }
}
