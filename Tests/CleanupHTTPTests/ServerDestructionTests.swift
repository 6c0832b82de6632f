import CircleCore
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import CleanupStore
import Foundation
import SQLKit
import Testing

/// Every byte string that would open something of the members': what the server kept that
/// their keys open (key bundles and recovery copies, login verifiers, file wraps, key
/// envelopes) and the keys the test itself holds (login keys, identity and agreement keys, vault
/// master keys, file keys). Only strings long enough not to turn up by chance.
func openers(members: [Member], files: [SealedFile], in store: any DatabaseStore) async throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    for member in members {
        let account = member.account
        out += [account.authKey, account.recoveryAuthKey, account.bundle, account.recoveryBundle, member.vaultMasterKey,
                Array(account.identity.rawRepresentation), Array(account.agreement.rawRepresentation)]
    }
    for file in files { out += [file.fileKey, file.wrap] }
    out += try await store.read { db in
        var kept: [[UInt8]] = []
        for (table, columns) in [("key_bundles", ["bundle", "recovery_bundle", "recovery_verifier"]), ("users", ["auth_verifier"]),
                                 ("vault_files", ["wrap"]), ("key_envelopes", ["enc", "ciphertext"])] {
            for row in try await db.raw("SELECT \(unsafeRaw: columns.joined(separator: ", ")) FROM \(unsafeRaw: table)").all() {
                for column in columns { kept.append(Array(try row.decode(column: column, as: Data.self))) }
            }
        }
        return kept
    }
    return out.filter { $0.count >= 16 }
}

/// What someone who took the disks would read: the SQLite file with its write-ahead log as they
/// are on disk (free pages included), or every row of every PostgreSQL table as text (bytes in
/// hex, so the secrets are searched as hex there); and every file in the vault folder.
func diskImage(of harness: ServerHarness, store: any DatabaseStore) async throws -> (database: Data, hex: String, vault: Data) {
    var database = Data()
    var hex = ""
    switch harness.engine {
    case .sqlite:
        for suffix in ["", "-wal"] {
            database += (try? Data(contentsOf: harness.folder.appendingPathComponent("circle.sqlite" + suffix))) ?? Data()
        }
    case .postgres:
        hex = try await store.read { db in
            var text = ""
            for table in try await db.raw("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()").all() {
                let name = try table.decode(column: "name", as: String.self)
                let rows = try await db.raw("SELECT COALESCE(string_agg(t::text, E'\\n'), '') AS dump FROM \(ident: name) t").first()
                text += try rows?.decode(column: "dump", as: String.self) ?? ""
            }
            return text
        }
    }
    var vault = Data()
    if let files = FileManager.default.enumerator(atPath: harness.vaultPath) {
        for case let path as String in files {
            vault += (try? Data(contentsOf: URL(fileURLWithPath: harness.vaultPath).appendingPathComponent(path))) ?? Data()
        }
    }
    return (database, hex, vault)
}

/// The secrets found in the image.
func found(_ secrets: [[UInt8]], in image: (database: Data, hex: String, vault: Data)) -> Int {
    secrets.filter { secret in
        image.database.range(of: Data(secret)) != nil || image.vault.range(of: Data(secret)) != nil
            || (!image.hex.isEmpty && image.hex.contains(Hex.encode(secret)))
    }.count
}

private func makeAdmins(_ members: [Member], in store: any DatabaseStore) async throws {
    for member in members {
        try await store.write { db in try await db.raw("UPDATE users SET is_admin = 1 WHERE id = \(bind: member.id)").run() }
    }
}

private func job(_ reply: HTTPProbe.Reply) throws -> (id: String, state: String, token: String?) {
    let id = try #require(TestJSON.string(reply.body, path: ["job", "id"]) ?? TestJSON.string(reply.body, path: ["id"]), "\(reply.status) \(reply.body)")
    let state = TestJSON.string(reply.body, path: ["job", "state"]) ?? TestJSON.string(reply.body, path: ["state"]) ?? ""
    return (id, state, TestJSON.string(reply.body, path: ["watchToken"]))
}

@Suite("The whole server destroyed from an admin's browser, with a second admin's approval")
struct ServerDestructionFromBrowserTests {
    @Test("a second admin must approve; only admins see or act on the request; approved, nothing opens at once and nothing is left", arguments: Engine.available)
    func withApproval(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cai = try await Member.register("cai", on: api)
            try await makeAdmins([ana, ben], in: store)
            let (conversation, chain) = try await ana.create(with: [ben, cai], on: api)
            try await send(["secret plans"], from: ana, in: conversation, chain: chain, to: [ana, ben, cai], api: api)
            let (anasFiles, _) = try await files(of: ana, conversation: conversation, api: api)
            let (caisFiles, _) = try await files(of: cai, conversation: conversation, api: api)
            let secrets = try await openers(members: [ana, ben, cai], files: anasFiles + caisFiles, in: store)
            #expect(found(secrets, in: try await diskImage(of: harness, store: store)) > 0, "the check can see what the server keeps")

            // Who may ask, and how.
            try await reauthenticate(cai, api: api)
            #expect(try await destroy("server", confirm: "destroy everything", as: cai, api: api).status == 403, "not an admin")
            #expect(try await destroy("server", confirm: "destroy everything", as: ana, api: api).status == 403, "not re-authenticated")
            try await reauthenticate(ana, api: api)
            #expect(try await destroy("server", confirm: "destroy it all", as: ana, api: api).status == 422)
            let asked = try await destroy("server", confirm: "destroy everything", as: ana, api: api)
            #expect(asked.status == 202, "\(asked.body)")
            let first = try job(asked)
            #expect(first.state == "awaiting-approval")
            #expect(try await destroy("server", confirm: "destroy everything", as: ana, api: api).status == 409, "one request at a time")
            #expect(try await count("SELECT COUNT(*) AS n FROM key_bundles", in: store) == 3, "nothing destroyed before the approval")
            #expect(try await api.call("GET", "/api/v1/account/me", token: ana.token).status == 200)
            // The other admin is alerted; a member is not, and cannot see or touch the request.
            let alerts = try await api.call("GET", "/api/v1/activity", token: ben.token)
            #expect(alerts.body.contains("destruction.approval-requested"), "\(alerts.body)")
            #expect(try await api.call("GET", "/api/v1/destruction/\(first.id)", token: ben.token).status == 200)
            #expect(try await api.call("GET", "/api/v1/destruction", token: ben.token).body.contains(first.id))
            #expect(try await api.call("GET", "/api/v1/destruction/\(first.id)", token: cai.token).status == 404)
            #expect(try await api.call("POST", "/api/v1/destruction/\(first.id)/approve", json: "{\"confirm\":\"destroy everything\"}", token: cai.token).status == 404)
            #expect(try await api.call("DELETE", "/api/v1/destruction/\(first.id)", token: cai.token).status == 404)
            // The admin who asked cannot approve; the other must re-authenticate and type the phrase.
            let approve = "/api/v1/destruction/\(first.id)/approve"
            #expect(try await api.call("POST", approve, json: "{\"confirm\":\"destroy everything\"}", token: ana.token).status == 403)
            #expect(try await api.call("POST", approve, json: "{\"confirm\":\"destroy everything\"}", token: ben.token).status == 403)
            try await reauthenticate(ben, api: api)
            #expect(try await api.call("POST", approve, json: "{\"confirm\":\"yes\"}", token: ben.token).status == 422)
            // Refused: it ends, and cannot be approved any more.
            let refused = try await api.call("DELETE", "/api/v1/destruction/\(first.id)", token: ben.token)
            #expect(refused.status == 200, "\(refused.body)")
            #expect(try job(refused).state == "cancelled")
            #expect(try await api.call("POST", approve, json: "{\"confirm\":\"destroy everything\"}", token: ben.token).status == 409)
            // A request left unapproved past 15 minutes lapses: a new one may be made.
            let second = try job(try await destroy("server", confirm: "destroy everything", as: ana, api: api))
            try await store.write { db in
                try await db.raw("UPDATE destruction_jobs SET created_at = created_at - 960000 WHERE id = \(bind: second.id)").run()
            }
            #expect(try await api.call("POST", "/api/v1/destruction/\(second.id)/approve", json: "{\"confirm\":\"destroy everything\"}", token: ben.token).status == 409)
            let third = try job(try await destroy("server", confirm: "destroy everything", as: ana, api: api))
            #expect(third.state == "awaiting-approval")
            // An admin account made after the request (say with an admin invite its requester
            // made) is not a second admin.
            let late = try await Member.register("dee", on: api)
            try await makeAdmins([late], in: store)
            try await reauthenticate(late, api: api)
            #expect(try await api.call("POST", "/api/v1/destruction/\(third.id)/approve", json: "{\"confirm\":\"destroy everything\"}", token: late.token).status == 403)

            // A blob no row names (left by a crash between storage and the database) goes too.
            let orphan = URL(fileURLWithPath: harness.vaultPath).appendingPathComponent("files/00/00ff00ff")
            try FileManager.default.createDirectory(at: orphan.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("orphaned ciphertext".utf8).write(to: orphan)

            let approved = try await api.call("POST", "/api/v1/destruction/\(third.id)/approve", json: "{\"confirm\":\"destroy everything\"}", token: ben.token)
            #expect(approved.status == 200, "\(approved.body)")
            let started = try job(approved)
            #expect(started.state == "running" || started.state == "done")
            // At the answer: no key, wrap or verifier is left, and nobody is signed in.
            #expect(try await count("SELECT COUNT(*) AS n FROM key_bundles", in: store) == 0)
            #expect(try await count("SELECT COUNT(*) AS n FROM key_envelopes", in: store) == 0)
            #expect(try await count("SELECT COUNT(*) AS n FROM invites", in: store) == 0)
            #expect(try await isSignedOut(cai, api: api))
            // Nothing that needs no session is taken meanwhile: it would vanish with the next
            // table, or outlive the destruction on keys that are gone.
            let signIn = try await api.call("POST", "/api/v1/auth/login", json: ana.account.login())
            #expect(signIn.status == 503 && signIn.body.contains("being destroyed"), "\(signIn.body)")

            // Followed to the end with the approver's token (both sessions ended).
            let done = try await waitUntilDone("/api/v1/destruction/\(third.id)", token: try #require(started.token), api: api)
            #expect((done["approvedBy"] as? String) == ben.id && (done["requestedBy"] as? String) == ana.id)
            // Finished, the server still refuses until it starts again with new keys: a member
            // registered now would be kept, under the destroyed pepper.
            #expect(try await api.call("POST", "/api/v1/auth/register", json: "{}").status == 503)
            #expect(try await api.call("POST", "/api/v1/auth/login", json: ana.account.login()).status == 503)
            #expect(try await api.call("POST", "/api/v1/vault/links/AAAAAAAAAAAAAAAAAAAAAA/open", json: "{}").status == 503)
            // Every table is empty but the new server chain: that it happened, when.
            for table in try await ServerDestruction.tables(store: store) where !["destruction_jobs", "activity_logs", "activity_heads"].contains(table) {
                #expect(try await count("SELECT COUNT(*) AS n FROM \"\(table)\"", in: store) == 0, "\(table)")
            }
            let kinds = try await store.read { db in
                try await db.raw("SELECT chain, kind FROM activity_logs").all().map {
                    (try $0.decode(column: "chain", as: String.self), try $0.decode(column: "kind", as: String.self))
                }
            }
            #expect(kinds.contains { $0.1 == "destruction.finished" }, "\(kinds)")
            #expect(kinds.allSatisfy { $0.1 == "destruction.finished" && ![ana.id, ben.id, cai.id].contains($0.0) }, "\(kinds)")
            #expect(try await count("SELECT COUNT(*) AS n FROM destruction_jobs", in: store) == 1, "only the job itself, for its watchers")
            #expect(!(anasFiles + caisFiles).contains { blobExists($0, vault: harness.vaultPath) })
            #expect(!FileManager.default.fileExists(atPath: orphan.path))
            if engine == .sqlite {
                #expect(!FileManager.default.fileExists(atPath: harness.folder.appendingPathComponent("pepper.key").path))
                #expect(!FileManager.default.fileExists(atPath: harness.folder.appendingPathComponent("activity.key").path))
            }
            // Nothing that opens anything is left on disk, not even in free pages or the log.
            #expect(found(secrets, in: try await diskImage(of: harness, store: store)) == 0)
        }
    }

    @Test("the only admin's request runs at once", arguments: Engine.available)
    func onlyAdmin(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ana = try await Member.register("ana", on: api)
            _ = try await Member.register("ben", on: api)
            try await makeAdmins([ana], in: store)
            try await reauthenticate(ana, api: api)
            let reply = try await destroy("server", confirm: "destroy everything", as: ana, api: api)
            #expect(reply.status == 202, "\(reply.body)")
            let started = try job(reply)
            #expect(started.state != "awaiting-approval")
            #expect(try await count("SELECT COUNT(*) AS n FROM key_bundles", in: store) == 0)
            _ = try await waitUntilDone("/api/v1/destruction/\(started.id)", token: try #require(started.token), api: api)
            #expect(try await count("SELECT COUNT(*) AS n FROM users", in: store) == 0)
        }
    }
}
