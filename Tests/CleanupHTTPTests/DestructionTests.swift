import CircleActivity
import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleKit
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import CleanupCore
import CleanupStore
import Foundation
import Logging
import SQLKit
import Testing
import VaultStore

/// What one member leaves behind in a test: messages in a shared conversation, files, a link.
private struct Footprint {
    let conversation: String
    let files: [SealedFile]
    let linkId: String
}

func count(_ sql: String, in store: any DatabaseStore) async throws -> Int {
    try await store.read { db in try await db.raw(SQLQueryString(stringLiteral: sql)).first()!.decode(column: "n", as: Int.self) }
}

func count(_ table: String, where condition: String, _ value: String, in store: any DatabaseStore) async throws -> Int {
    try await store.read { db in
        try await db.raw("SELECT COUNT(*) AS n FROM \(unsafeRaw: table) WHERE \(unsafeRaw: condition) = \(bind: value)").first()!.decode(column: "n", as: Int.self)
    }
}

/// Sends `texts` from `member` in the conversation (with envelopes to everyone).
func send(_ texts: [String], from member: Member, in conversation: String, chain: MembershipChain, to members: [Member], api: APIClient) async throws {
    var sending = SenderChain.fresh()
    let envelopes = try await api.call("POST", "/api/v1/conversations/\(conversation)/envelopes",
                                       json: try member.envelopes(for: sending, membership: chain, members: members), token: member.token)
    guard envelopes.status == 201 else { throw TestSupportError("envelopes: \(envelopes.status) \(envelopes.body)") }
    for text in texts {
        let reply = try await api.call("POST", "/api/v1/conversations/\(conversation)/messages", json: Wire.message(try member.seal(text, chain: chain, sender: &sending)), token: member.token)
        guard reply.status == 201 else { throw TestSupportError("message: \(reply.status) \(reply.body)") }
    }
}

/// Uploads a private and a conversation file for `member`, and makes a share link to the first.
func files(of member: Member, conversation: String, api: APIClient) async throws -> ([SealedFile], String) {
    let tus = Tus(api: api)
    let own = try SealedFile(size: 120_000, owner: member)
    try await tus.upload(own, as: member)
    let shared = try SealedFile(size: 30_000, owner: member, name: "shared.pdf")
    try await tus.upload(shared, as: member, metadata: shared.metadata(level: "conversation", conversationId: conversation))
    let link = try await TestLink.make(for: own, by: member, password: nil, on: api)
    return ([own, shared], link.id)
}

func reauthenticate(_ member: Member, api: APIClient) async throws {
    let reply = try await api.call("POST", "/api/v1/account/reauthenticate", json: "{\"authKey\":\"\(Base64URL.encode(member.account.authKey))\"}", token: member.token)
    guard reply.status == 200 else { throw TestSupportError("reauthenticate: \(reply.status) \(reply.body)") }
}

func destroy(_ kind: String, confirm: String, conversation: String? = nil, as member: Member, api: APIClient) async throws -> HTTPProbe.Reply {
    var body: [String: Any] = ["kind": kind, "confirm": confirm]
    if let conversation { body["conversationId"] = conversation }
    return try await api.call("POST", "/api/v1/destruction", json: Wire.json(body), token: member.token)
}

/// Polls the job (with the watch token, which outlives the requester's sessions) until it is done.
func waitUntilDone(_ url: String, token: String, api: APIClient) async throws -> [String: Any] {
    for _ in 0..<200 {
        let reply = try await api.call("GET", url, headers: ["Circle-Job-Token": token])
        guard reply.status == 200, let job = TestJSON.value(reply.body, path: []) as? [String: Any] else { throw TestSupportError("job: \(reply.status) \(reply.body)") }
        if job["state"] as? String == "done" { return job }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestSupportError("the job did not finish")
}

/// Whether the member's token stops working within 3 s (a token a service remembers works for at
/// most another second after the sessions end).
func isSignedOut(_ member: Member, api: APIClient) async throws -> Bool {
    for _ in 0..<30 {
        if try await api.call("GET", "/api/v1/account/me", token: member.token).status == 401 { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return false
}

func blobExists(_ file: SealedFile, vault: String) -> Bool {
    let name = Hex.encode(file.fileIdBytes)
    guard let all = FileManager.default.enumerator(atPath: vault) else { return false }
    return all.contains { ($0 as? String)?.hasSuffix(name) == true }
}

/// A runner as a cleanup replica runs one, on the test's side of the database (its activity key
/// its own: the test reads counts, not sealed addresses).
private func testRunner(_ name: String, store: any DatabaseStore, blobs: any BlobStore, clock: any WallClock, batch: Int) -> DestructionRunner {
    let logger = Logger(label: "test")
    let sealer = ActivityRecorder(sealer: ActivitySealer(ActivitySettings(keys: [.init(id: "t", bytes: SecureRandom.bytes(32))])), logger: logger)
    return DestructionRunner(store: store, blobs: blobs, events: EventPublisher(store: store, bus: LocalBus(), logger: logger), security: sealer,
                             clock: clock, logger: logger, batch: batch, name: name)
}

@Suite("Destruction: keys first, then everything else, only by whom it may")
struct DestructionTests {
    @Test("an embedded server nobody uses leaves its database quiet (its background work yields and does not count), so a destruction runs at its idle pace; a member's request counts")
    func idleServerIsQuiet() async throws {
        try await ServerHarness(.sqlite).run { api, _, server in
            let ana = try await Member.register("ana", on: api)
            let pace = DestructionRunner.tuning(for: .sqlite).pace
            var longest = Duration.zero
            let deadline = ContinuousClock.now + .seconds(8)
            while ContinuousClock.now < deadline, longest < pace.quiet {
                try await Task.sleep(for: .milliseconds(100))
                longest = max(longest, await server.sinceLastUse() ?? .zero)
            }
            #expect(longest >= pace.quiet, "the database was used at least every \(longest)")
            #expect(pace.factor(sinceLastUse: longest) == pace.idle && pace.idle < pace.busy)
            #expect(try await api.call("GET", "/api/v1/presence?users=\(ana.id)", token: ana.token).status == 200)
            let since = try #require(await server.sinceLastUse())
            #expect(since < pace.quiet && pace.factor(sinceLastUse: since) == pace.busy)
        }
    }

    @Test("destroying an account: unreadable and signed out at once, every trace gone after the job, the others intact", arguments: Engine.available)
    func account(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conversation, chain) = try await ana.create(with: [ben], on: api)
            try await send(["one", "two", "three"], from: ana, in: conversation, chain: chain, to: [ana, ben], api: api)
            try await send(["four", "five"], from: ben, in: conversation, chain: chain, to: [ana, ben], api: api)
            let (anasFiles, linkId) = try await files(of: ana, conversation: conversation, api: api)
            let bensFile = try SealedFile(size: 40_000, owner: ben)
            try await Tus(api: api).upload(bensFile, as: ben)
            #expect(anasFiles.allSatisfy { blobExists($0, vault: harness.vaultPath) })

            // Refused, changing nothing: without re-authentication, with the wrong password, with the wrong phrase.
            let early = try await destroy("account", confirm: "destroy my account", as: ana, api: api)
            #expect(early.status == 403 && early.body.contains("reauthentication-required"), "\(early.body)")
            let wrong = try await api.call("POST", "/api/v1/account/reauthenticate", json: "{\"authKey\":\"\(Base64URL.encode(SecureRandom.bytes(32)))\"}", token: ana.token)
            #expect(wrong.status == 403)
            #expect(try await destroy("account", confirm: "destroy my account", as: ana, api: api).status == 403, "a wrong password opens no window")
            try await reauthenticate(ana, api: api)
            let typo = try await destroy("account", confirm: "destroy my acount", as: ana, api: api)
            #expect(typo.status == 422 && typo.body.contains("confirm"))
            #expect(try await destroy("everything", confirm: "destroy my account", as: ana, api: api).status == 422)
            #expect(try await count("key_bundles", where: "user_id", ana.id, in: store) == 1, "refusals destroyed nothing")

            let started = try await destroy("account", confirm: "Destroy my account", as: ana, api: api)
            #expect(started.status == 202, "\(started.body)")
            let url = try #require(started.headers["location"])
            let watch = try #require(TestJSON.string(started.body, path: ["watchToken"]))
            #expect(TestJSON.int(started.body, path: ["job", "progress", "messagesTotal"]) == 3)
            #expect(TestJSON.int(started.body, path: ["job", "progress", "filesTotal"]) == 2)

            // At once: no session, no sign-in, no bundle, no envelope, no file, no link.
            #expect(try await api.call("GET", "/api/v1/account/me", token: ana.token).status == 401)
            #expect(try await api.call("POST", "/api/v1/auth/login", json: ana.account.login()).status == 401)
            #expect(try await count("key_bundles", where: "user_id", ana.id, in: store) == 0)
            #expect(try await count("SELECT COUNT(*) AS n FROM key_envelopes WHERE recipient_id = '\(ana.id)' OR sender_id = '\(ana.id)'", in: store) == 0)
            #expect(try await count("vault_files", where: "owner_id", ana.id, in: store) == 0)
            #expect(try await count("vault_links", where: "id", linkId, in: store) == 0)
            #expect(try await api.call("POST", "/api/v1/vault/links/\(linkId)/open", json: "{}").status >= 400)
            #expect(try await api.call("GET", "/api/v1/vault/files/\(anasFiles[1].fileId)", token: ben.token).status == 404,
                    "the conversation file is gone for the others too")
            // Someone else cannot follow the job.
            #expect(try await api.call("GET", url, token: ben.token).status == 404)
            #expect(try await api.call("GET", url, headers: ["Circle-Job-Token": SessionTokens.generate()]).status == 404)

            let job = try await waitUntilDone(url, token: watch, api: api)
            let progress = try #require(job["progress"] as? [String: Any])
            #expect(progress["messages"] as? Int == 3 && progress["files"] as? Int == 2)
            #expect(try await count("messages", where: "sender_id", ana.id, in: store) == 0)
            #expect(try await count("messages", where: "sender_id", ben.id, in: store) == 2, "the others' messages stay")
            #expect(try await count("sessions", where: "user_id", ana.id, in: store) == 0)
            #expect(try await count("user_events", where: "user_id", ana.id, in: store) == 0)
            #expect(try await count("activity_logs", where: "chain", ana.id, in: store) == 0)
            #expect(try await count("destruction_blobs", where: "job_id", job["id"] as! String, in: store) == 0)
            #expect(!anasFiles.contains { blobExists($0, vault: harness.vaultPath) }, "the blobs are gone from disk")
            #expect(blobExists(bensFile, vault: harness.vaultPath))
            #expect(try await api.send("GET", "/api/v1/vault/files/\(bensFile.fileId)/content", bytes: nil, token: ben.token).status == 200)
            // The tombstone: who and when, in the server's chain only.
            let tombstone = try await count("SELECT COUNT(*) AS n FROM activity_logs WHERE chain = 'server' AND kind = 'destruction.finished' AND details LIKE '%\(ana.id)%'", in: store)
            #expect(tombstone == 1)
            // The others see that ana left the Circle.
            let entry = try await api.call("GET", "/api/v1/directory/users/\(ana.id)", token: ben.token)
            #expect(TestJSON.value(entry.body, path: ["left"]) as? Bool == true)
            #expect(try await api.events(ben.token, type: "member.left").contains { $0["userId"] as? String == ana.id })
            // The name stays taken: nobody can register as ana.
            let again = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "ana").registration(invite: nil))
            #expect(again.status == 409)
        }
    }

    @Test("destroying a conversation: only its admin may; members lose it at once, every row and attachment goes", arguments: Engine.available)
    func conversation(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cy = try await Member.register("cyd", on: api)
            let (conversation, chain) = try await ana.create(with: [ben], on: api)
            let (other, otherChain) = try await ana.create(with: [ben], on: api)
            try await send(["a", "b"], from: ana, in: conversation, chain: chain, to: [ana, ben], api: api)
            try await send(["c"], from: ben, in: conversation, chain: chain, to: [ana, ben], api: api)
            try await send(["kept"], from: ben, in: other, chain: otherChain, to: [ana, ben], api: api)
            let (bensFiles, _) = try await files(of: ben, conversation: conversation, api: api)

            for member in [ben, cy] { try await reauthenticate(member, api: api) }
            let byMember = try await destroy("conversation", confirm: "destroy this conversation", conversation: conversation, as: ben, api: api)
            #expect(byMember.status == 403, "a member who is not an admin")
            let byStranger = try await destroy("conversation", confirm: "destroy this conversation", conversation: conversation, as: cy, api: api)
            #expect(byStranger.status == 404, "a stranger cannot tell it exists")
            #expect(try await destroy("conversation", confirm: "destroy this conversation", as: ana, api: api).status == 422, "no conversation named")

            try await reauthenticate(ana, api: api)
            let started = try await destroy("conversation", confirm: "destroy this conversation", conversation: conversation, as: ana, api: api)
            #expect(started.status == 202, "\(started.body)")
            let again = try await destroy("conversation", confirm: "destroy this conversation", conversation: conversation, as: ana, api: api)
            #expect(again.status == 404 || again.status == 409)
            for member in [ana, ben] {
                #expect(try await api.call("GET", "/api/v1/conversations/\(conversation)", token: member.token).status == 404)
                #expect(try await api.call("GET", "/api/v1/conversations/\(conversation)/messages", token: member.token).status == 404)
            }
            #expect(try await api.call("GET", "/api/v1/vault/files/\(bensFiles[1].fileId)", token: ben.token).status == 404)
            #expect(try await count("key_envelopes", where: "conversation_id", conversation, in: store) == 0)

            let url = try #require(started.headers["location"])
            _ = try await waitUntilDone(url, token: try #require(TestJSON.string(started.body, path: ["watchToken"])), api: api)
            for table in ["messages", "membership_ops", "message_reads", "conversation_members", "key_envelopes", "video_calls"] {
                #expect(try await count(table, where: "conversation_id", conversation, in: store) == 0, "\(table)")
            }
            #expect(try await count("conversations", where: "id", conversation, in: store) == 0)
            #expect(!blobExists(bensFiles[1], vault: harness.vaultPath) && blobExists(bensFiles[0], vault: harness.vaultPath))
            #expect(try await count("messages", where: "conversation_id", other, in: store) == 1, "the other conversation is intact")
            #expect(try await api.events(ben.token, type: "conversation.destroyed").contains { $0["conversationId"] as? String == conversation })
            // The requester's own log says it finished; listing shows only one's own jobs.
            #expect(try await count("SELECT COUNT(*) AS n FROM activity_logs WHERE chain = '\(ana.id)' AND kind = 'destruction.finished'", in: store) == 1)
            #expect(TestJSON.value(try await api.call("GET", "/api/v1/destruction", token: ana.token).body, path: ["jobs"]).map { ($0 as? [Any])?.count } == 1)
            #expect(TestJSON.value(try await api.call("GET", "/api/v1/destruction", token: ben.token).body, path: ["jobs"]).map { ($0 as? [Any])?.count } == 0)
        }
    }

    @Test("revoking all links, then destroying all files: links die at once, files and blobs go, quota returns", arguments: Engine.available)
    func filesAndLinks(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conversation, _) = try await ana.create(with: [ben], on: api)
            let (anasFiles, linkId) = try await files(of: ana, conversation: conversation, api: api)
            try await reauthenticate(ana, api: api)
            let links = try await destroy("links", confirm: "revoke all my links", as: ana, api: api)
            #expect(links.status == 202)
            let revoked = try await store.read { db in
                try await db.raw("SELECT revoked_at, wrap FROM vault_links WHERE id = \(bind: linkId)").first()
            }
            #expect(try revoked?.decode(column: "revoked_at", as: Int64?.self) != nil)
            #expect(try revoked?.decode(column: "wrap", as: Data?.self) == nil)
            #expect(try await api.call("GET", "/api/v1/vault/files", token: ana.token).body.contains(anasFiles[0].fileId), "the files stay")

            let files = try await destroy("files", confirm: "destroy all my files", as: ana, api: api)
            #expect(files.status == 202)
            let listed = try await api.call("GET", "/api/v1/vault/files", token: ana.token)
            #expect(!listed.body.contains(anasFiles[0].fileId) && TestJSON.int(listed.body, path: ["used"]) == 0)
            #expect(try await api.send("GET", "/api/v1/vault/files/\(anasFiles[0].fileId)/content", bytes: nil, token: ana.token).status == 404)
            _ = try await waitUntilDone(try #require(files.headers["location"]), token: try #require(TestJSON.string(files.body, path: ["watchToken"])), api: api)
            #expect(!anasFiles.contains { blobExists($0, vault: harness.vaultPath) })
            #expect(try await api.call("GET", "/api/v1/account/me", token: ana.token).status == 200, "the account stays")
        }
    }

    @Test("a runner that dies between two commits: another finishes the job, every batch counted once", arguments: Engine.available)
    func resumeAfterCrash(engine: Engine) async throws {
        let harness = ServerHarness(engine, keepingServices: { !($0 is DestructionRunner) })
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conversation, chain) = try await ana.create(with: [ben], on: api)
            try await send((1...7).map { "m\($0)" }, from: ana, in: conversation, chain: chain, to: [ana, ben], api: api)
            let (anasFiles, _) = try await files(of: ana, conversation: conversation, api: api)
            try await reauthenticate(ana, api: api)
            let started = try await destroy("account", confirm: "destroy my account", as: ana, api: api)
            #expect(started.status == 202)
            let jobId = try #require(TestJSON.string(started.body, path: ["job", "id"]))

            let blobs = try VaultBlobs.open(path: harness.vaultPath)
            func runner(_ name: String, clock: any WallClock) -> DestructionRunner {
                testRunner(name, store: store, blobs: blobs, clock: clock, batch: 2)
            }
            let now = Timestamp.now()
            // The first runner commits three batches (two of messages, one more), then dies holding the claim.
            #expect(try await runner("first", clock: FixedClock(now)).runAvailable(batches: 3) == 3)
            let midway = try await store.read { db in try await DestructionJobs.job(jobId, in: db)!.job }
            #expect(midway.progress.messages == 6 && midway.step == .messages)
            // While the claim holds nobody else takes the job; once it lapses the second runner finishes it.
            #expect(try await runner("second", clock: FixedClock(now.adding(seconds: 5))).runAvailable() == 0)
            let later = FixedClock(now.adding(seconds: 31))
            #expect(try await runner("second", clock: later).runAvailable() > 0)
            #expect(try await runner("first", clock: FixedClock(now)).runAvailable() == 0, "the first runner lost its claim")
            let done = try await store.read { db in try await DestructionJobs.job(jobId, in: db)!.job }
            #expect(done.isDone && done.progress.messages == 7 && done.progress.messagesTotal == 7)
            #expect(done.progress.files == 2 && done.progress.filesTotal == 2)
            #expect(try await count("messages", where: "sender_id", ana.id, in: store) == 0)
            #expect(!anasFiles.contains { blobExists($0, vault: harness.vaultPath) })
        }
    }

    @Test("two runners at once: each batch runs once", arguments: Engine.available)
    func twoRunners(engine: Engine) async throws {
        let harness = ServerHarness(engine, keepingServices: { !($0 is DestructionRunner) })
        try await harness.run { api, store in
            var jobs: [String] = []
            let ben = try await Member.register("ben", on: api)
            for name in ["ana", "cyd", "dee"] {
                let member = try await Member.register(name, on: api)
                let (conversation, chain) = try await member.create(with: [ben], on: api)
                try await send((1...5).map { "\(name)\($0)" }, from: member, in: conversation, chain: chain, to: [member, ben], api: api)
                try await reauthenticate(member, api: api)
                let started = try await destroy("account", confirm: "destroy my account", as: member, api: api)
                jobs.append(try #require(TestJSON.string(started.body, path: ["job", "id"])))
            }
            let blobs = try VaultBlobs.open(path: harness.vaultPath)
            let runners = ["a", "b"].map { testRunner($0, store: store, blobs: blobs, clock: SystemWallClock(), batch: 1) }
            async let first = runners[0].runAvailable()
            async let second = runners[1].runAvailable()
            _ = try await (first, second)
            for id in jobs {
                let job = try await store.read { db in try await DestructionJobs.job(id, in: db)!.job }
                #expect(job.isDone && job.progress.messages == 5 && job.progress.messagesTotal == 5)
            }
            #expect(try await count("SELECT COUNT(*) AS n FROM messages WHERE sender_id <> '\(ben.id)'", in: store) == 0)
        }
    }
}

@Suite("Emergency destruction of the whole server")
struct ServerDestructionTests {
    @Test("keys first: after the first transaction nothing stored opens with the members' own keys; then no row, blob or trace on disk is left", arguments: Engine.available)
    func everything(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conversation, chain) = try await ana.create(with: [ben], on: api)
            try await send(["secret"], from: ana, in: conversation, chain: chain, to: [ana, ben], api: api)
            let (anasFiles, _) = try await files(of: ana, conversation: conversation, api: api)
            let secrets = try await openers(members: [ana, ben], files: anasFiles, in: store)

            let bundles = try await ServerDestruction.shredKeys(store: store, at: .now())
            #expect(bundles == 2)
            // What is left cannot be opened even by the owner's own keys.
            let wraps = try await store.read { db in
                try await db.raw("SELECT id, wrap FROM vault_files WHERE owner_id = \(bind: ana.id)").all().map {
                    (try $0.decode(column: "id", as: String.self), Array(try $0.decode(column: "wrap", as: Data.self)))
                }
            }
            #expect(wraps.count == 2)
            for (id, wrap) in wraps {
                let file = try #require(anasFiles.first { $0.fileId == id })
                #expect(throws: (any Error).self) { try VaultKeys.unwrap(wrap, owner: ana.id, fileId: file.fileIdBytes, vaultMasterKey: ana.vaultMasterKey) }
            }
            #expect(try await count("SELECT COUNT(*) AS n FROM key_envelopes", in: store) == 0)
            #expect(try await count("SELECT COUNT(*) AS n FROM vault_links WHERE wrap IS NOT NULL OR verifier IS NOT NULL", in: store) == 0)
            // No announcement reaches the services from the command line: a token they remember
            // works for at most another second.
            #expect(try await isSignedOut(ana, api: api))
            #expect(try await api.call("POST", "/api/v1/auth/login", json: ana.account.login()).status == 401)

            let tables = try await ServerDestruction.deleteRows(store: store)
            #expect(tables.contains("messages") && tables.contains("users") && !tables.contains("schema_migrations"))
            for table in tables {
                #expect(try await count("SELECT COUNT(*) AS n FROM \"\(table)\"", in: store) == 0, "\(table)")
            }
            #expect(try ServerDestruction.removeBlobs(in: harness.vaultPath) > 0)
            #expect(!anasFiles.contains { blobExists($0, vault: harness.vaultPath) })
            // Nothing that opens anything is left on disk, not even in free pages or the log.
            #expect(found(secrets, in: try await diskImage(of: harness, store: store)) == 0)
            // The server goes on, empty: a new member can register under a name that was taken.
            _ = try await Member.register("ana", on: api)
        }
    }
}
