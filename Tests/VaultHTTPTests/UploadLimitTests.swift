import CircleConfig
import CircleCore
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing
import VaultCore
import VaultStore

@Suite("Vault uploads: unfinished uploads capped, abandoned hashes freed, one writer across replicas")
struct UploadLimitTests {
    @Test("a member holds at most vault.maxUnfinishedUploads unfinished uploads, even when creating them all at once; the next gets 429 until one is cancelled; others are not affected", arguments: Engine.available)
    func unfinishedCap(engine: Engine) async throws {
        let harness = ServerHarness(engine, extra: [.vaultMaxUnfinishedUploads: "3"])
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let tus = Tus(api: api)
            let files = try (0..<8).map { _ in try SealedFile(size: 33, owner: ana) }
            let replies = try await withThrowingTaskGroup(of: HTTPProbe.Reply.self) { group in
                for file in files { group.addTask { try await tus.create(file, as: ana) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = replies.filter { $0.status == 201 }
            let refused = replies.filter { $0.status == 429 }
            #expect(created.count == 3 && refused.count == 5, "statuses: \(replies.map(\.status))")
            for reply in refused {
                #expect(reply.body.contains("too-many-uploads") && reply.body.contains("finish or cancel one"))
                #expect(Int(reply.headers["retry-after"] ?? "") ?? 0 > 3600, "the oldest expires in about a day")
            }
            func rows(of member: Member) async throws -> Int {
                try await store.read { db in
                    try await db.raw("SELECT COUNT(*) AS n FROM vault_uploads WHERE owner_id = \(bind: member.id)").first()!.decode(column: "n", as: Int.self)
                }
            }
            #expect(try await rows(of: ana) == 3, "a refused creation stores nothing")
            #expect(try await tus.create(try SealedFile(size: 33, owner: ben), as: ben).status == 201, "another member has his own allowance")

            let location = try #require(created.first?.headers["location"])
            #expect(try await api.send("DELETE", location, bytes: nil, token: ana.token, headers: ["Tus-Resumable": "1.0.0"]).status == 204)
            let next = try SealedFile(size: 33, owner: ana)
            let nextLocation = try #require(try await tus.create(next, as: ana).headers["location"], "a cancelled upload makes room")
            #expect(try await tus.create(try SealedFile(size: 33, owner: ana), as: ana).status == 429)
            #expect(try await tus.patch(nextLocation, offset: 0, next.stream, as: ana).status == 204)
            #expect(try await tus.create(try SealedFile(size: 33, owner: ana), as: ana).status == 201, "a finished upload makes room")
        }
    }

    @Test("hashes of uploads left idle are dropped, and at most `capacity` are kept, the least recently used going first")
    func hashersForget() async throws {
        let idle = UploadHashers(idle: .milliseconds(100))
        await idle.start("a")
        try await Task.sleep(for: .milliseconds(250))
        await idle.start("b")
        #expect(await idle.count == 1)
        #expect(await idle.take("a", at: 0) == nil, "the abandoned upload's hash is gone")
        #expect(await idle.take("b", at: 0) != nil)

        let small = UploadHashers(capacity: 2)
        await small.start("a")
        await small.start("b")
        await small.start("c")
        #expect(await small.count == 2)
        #expect(await small.take("a", at: 0) == nil, "the oldest went first")
        #expect(await small.take("c", at: 0) != nil)
    }

    @Test("two replicas never write one upload at once: a PATCH while another replica holds the lease gets 409 and writes nothing; a held lease is renewed past its term; a stalled writer's lapsed lease passes to the next, and the stalled one can neither move the offset nor finish", arguments: Engine.available)
    func leases(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let cy = try await Member.register("cyd", on: api)
            let tus = Tus(api: api)
            let file = try SealedFile(size: 4000, owner: cy)
            let location = try #require(try await tus.create(file, as: cy).headers["location"])
            let id = String(try #require(location.split(separator: "/").last))
            let now = Timestamp.now().millis

            // Another replica is writing this upload.
            let elsewhere = "replica-b-token"
            let owner = cy.id
            let leased = try await store.write { db in try await VaultRepository.lease(upload: id, owner: owner, token: elsewhere, until: now + 60_000, now: now, in: db) }
            #expect(leased)
            let busy = try await tus.patch(location, offset: 0, Array(file.stream[0..<1000]), as: cy)
            #expect(busy.status == 409 && busy.body.contains("upload-busy"))
            #expect(try await tus.head(location, as: cy).headers["upload-offset"] == "0", "the refused PATCH wrote nothing")
            try await store.write { db in try await VaultRepository.releaseLease(upload: id, token: elsewhere, in: db) }
            #expect(try await tus.patch(location, offset: 0, Array(file.stream[0..<1000]), as: cy).status == 204)

            // Two replicas' lease keepers on the same database: the holder renews past the term.
            // Judged by what the database holds, not by sleeping: on a loaded machine (CI runs
            // the suites in parallel on two cores) a renewal may come seconds late, and the test
            // waits for it instead of failing.
            let term = Duration.seconds(12)
            let a = UploadLeases(store: store, clock: SystemWallClock(), term: term)
            let b = UploadLeases(store: store, clock: SystemWallClock(), term: term)
            let leaseUntil: @Sendable () async throws -> Int64 = {
                try await store.read { db in
                    try await db.raw("SELECT lease_until FROM vault_uploads WHERE id = \(bind: id)").first()?.decode(column: "lease_until", as: Int64?.self) ?? 0
                }
            }
            let lost = try await a.holding(id, owner: cy.id, busy: TestSupportError("a busy")) { lease in
                let first = try await leaseUntil()
                let deadline = ContinuousClock.now + .seconds(60)
                // Past the first term, with a renewal seen that reaches beyond it and has half a
                // term still to run: the other replica's attempt just after must find the lease
                // held even if the machine stalls this task for a few seconds, not a renewal read
                // near the end of its term.
                var renewed = first
                while Timestamp.now().millis <= first || renewed <= first || renewed - Timestamp.now().millis < term.milliseconds / 2,
                      ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                    renewed = try await leaseUntil()
                }
                #expect(renewed > first, "renewed past its first term")
                await #expect(throws: TestSupportError.self) {
                    try await b.holding(id, owner: cy.id, busy: TestSupportError("b busy")) { _ in }
                }
                return lease.lost
            }
            #expect(!lost, "renewed every third of its term")
            try await b.holding(id, owner: cy.id, busy: TestSupportError("b busy")) { _ in }

            // A writer that stalls past its term (no renewal) loses the upload to the next one.
            let stalled = "stalled-token"
            let start = Timestamp.now().millis
            let taken = try await store.write { db in try await VaultRepository.lease(upload: id, owner: owner, token: stalled, until: start + 100, now: start, in: db) }
            #expect(taken)
            try await Task.sleep(for: .milliseconds(200))
            let reply = try await tus.patch(location, offset: 1000, Array(file.stream[1000...]), as: cy)
            #expect(reply.status == 204 && reply.headers["upload-offset"] == String(file.stream.count), "the next writer finished it")
            let moved = try await store.write { db in try await VaultRepository.advance(upload: id, from: 1000, to: 2000, token: stalled, in: db) }
            let removed = try await store.write { db in try await VaultRepository.removeUpload(id, token: stalled, in: db) }
            #expect(!moved && !removed)
            let list = try await api.call("GET", "/api/v1/vault/files", token: cy.token)
            #expect((TestJSON.value(list.body, path: ["files"]) as? [Any])?.count == 1)
        }
    }
}
