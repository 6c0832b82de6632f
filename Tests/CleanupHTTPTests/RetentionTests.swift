import CircleCore
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import CleanupCore
import Foundation
import Logging
import SQLKit
import Testing

@Suite("A conversation's retention: a signed settings op; past it, never served, then swept")
struct RetentionTests {
    @Test("only an admin sets it; older messages stop being served at once and go with the sweep; other conversations keep theirs", arguments: Engine.available)
    func retention(engine: Engine) async throws {
        try await ServerHarness(engine, keepingServices: { !($0 is RetentionSweeper) }).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cyd = try await Member.register("cyd", on: api)
            let (kept, initial) = try await ana.create(with: [ben], on: api)
            var chain = initial
            try await send(["old one", "old two", "recent"], from: ana, in: kept, chain: chain, to: [ana, ben], api: api)
            let (other, otherChain) = try await ana.create(with: [cyd], on: api)
            try await send(["old elsewhere"], from: ana, in: other, chain: otherChain, to: [ana, cyd], api: api)
            // Received 31 days ago, as far as the server knows.
            let monthAgo = Timestamp.now().millis - 31 * 86_400_000
            for (conversation, seqs) in [(kept, [1, 2]), (other, [1])] {
                for seq in seqs {
                    try await store.write { db in
                        try await db.raw("UPDATE messages SET created_at = \(bind: monthAgo) WHERE conversation_id = \(bind: conversation) AND seq = \(bind: seq)").run()
                    }
                }
            }
            func listed(_ conversation: String, as member: Member) async throws -> Int {
                let reply = try await api.call("GET", "/api/v1/conversations/\(conversation)/messages", token: member.token)
                return (TestJSON.value(reply.body, path: ["messages"]) as? [Any])?.count ?? -1
            }
            #expect(try await listed(kept, as: ben) == 3, "no retention: everything is served")

            let thirtyDays = ConversationSettings(kind: .group, retentionDays: 30)
            let byMember = try await api.call("POST", "/api/v1/conversations/\(kept)/ops",
                                              json: Wire.append(try ben.op(chain, .settings, settings: thirtyDays)), token: ben.token)
            #expect(byMember.status == 422 && byMember.body.contains("refused-op"), "a member cannot set it: \(byMember.body)")
            let op = try ana.op(chain, .settings, settings: thirtyDays)
            let set = try await api.call("POST", "/api/v1/conversations/\(kept)/ops", json: Wire.append(op), token: ana.token)
            #expect(set.status == 201, "\(set.body)")
            try chain.append(op, actorIdentity: ana.identityPublic)
            let shown = try await api.call("GET", "/api/v1/conversations/\(kept)", token: ben.token)
            #expect(TestJSON.value(shown.body, path: ["settings", "retentionDays"]) as? Int == 30, "\(shown.body)")

            // At once: the two old messages are not served, though still stored.
            #expect(try await listed(kept, as: ben) == 1)
            #expect(try await listed(kept, as: ana) == 1)
            #expect(try await count("messages", where: "conversation_id", kept, in: store) == 3)

            // Attachments: one received a month ago (whatever expiry its sender gave it), one
            // received today, one a month ago in the other conversation, one private file.
            let files: [(id: String, level: String, conversation: String?, at: Int64, expires: Int64)] = [
                ("old-attachment", "conversation", kept, monthAgo, 0),
                ("old-attachment-with-expiry", "conversation", kept, monthAgo, Timestamp.now().millis + 86_400_000),
                ("new-attachment", "conversation", kept, Timestamp.now().millis, 0),
                ("elsewhere", "conversation", other, monthAgo, 0),
                ("private", "private", nil, monthAgo, 0),
            ]
            for file in files {
                try await store.write { db in
                    try await db.raw("""
                        INSERT INTO vault_files (id, owner_id, level, conversation_id, meta, wrap, size, sha256, created_at, expires_at, accessed_at)
                        VALUES (\(bind: file.id), \(bind: ana.id), \(bind: file.level), \(bind: file.conversation), \(bind: Data([1])), \(bind: Data([1])), 1,
                                \(bind: Data(repeating: 0, count: 32)), \(bind: file.at), \(bind: file.expires), \(bind: file.at))
                        """).run()
                }
            }

            let sweeper = RetentionSweeper(store: store, clock: SystemWallClock(), logger: Logger(label: "test"), batch: 1)
            let sweptAt = Timestamp.now().millis
            #expect(try await sweeper.sweep() == 2)
            let expiries = try await store.read { db in
                try await db.raw("SELECT id, expires_at FROM vault_files").all().reduce(into: [String: Int64]()) {
                    $0[try $1.decode(column: "id", as: String.self)] = try $1.decode(column: "expires_at", as: Int64.self)
                }
            }
            #expect((sweptAt...Timestamp.now().millis).contains(expiries["old-attachment"] ?? 0), "\(expiries)")
            #expect((sweptAt...Timestamp.now().millis).contains(expiries["old-attachment-with-expiry"] ?? 0), "\(expiries)")
            #expect(expiries["new-attachment"] == 0 && expiries["elsewhere"] == 0 && expiries["private"] == 0, "\(expiries)")
            #expect(try await count("messages", where: "conversation_id", kept, in: store) == 1)
            #expect(try await count("messages", where: "conversation_id", other, in: store) == 1, "a conversation without retention keeps its messages")
            #expect(try await listed(other, as: cyd) == 1)
            #expect(try await sweeper.sweep() == 0)
            // New messages go on as usual.
            try await send(["after"], from: ben, in: kept, chain: chain, to: [ana, ben], api: api)
            #expect(try await listed(kept, as: ana) == 2)
        }
    }
}
