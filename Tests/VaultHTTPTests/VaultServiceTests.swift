import CircleConfig
import CircleCore
import CircleKit
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import CleanupCore
import Crypto
import Foundation
import SQLKit
import Testing
import VaultStore
#if canImport(Glibc)
import Glibc
#endif

@Suite("Vault service: tus uploads, files, access, links, cleanup")
struct VaultServiceTests {
    @Test("a file sealed by CircleKit uploads in pieces, lists, downloads whole and by range, and opens", arguments: Engine.available)
    func uploadAndDownload(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, _ in
            let ann = try await Member.register("ann", on: api)
            let tus = Tus(api: api)
            let options = try await api.send("OPTIONS", Tus.base, bytes: nil)
            #expect(options.status == 204 && options.headers["tus-version"] == "1.0.0")
            #expect(options.headers["tus-extension"]?.contains("creation-with-upload") == true && options.headers["tus-checksum-algorithm"] == "sha256")
            let file = try SealedFile(size: 300_000, owner: ann)
            // creation-with-upload carries the first bytes; the rest follow with checksums.
            let created = try await tus.create(file, as: ann, body: Array(file.stream[0..<50_000]))
            #expect(created.status == 201 && created.headers["upload-offset"] == "50000")
            #expect(created.headers["upload-expires"]?.hasSuffix("GMT") == true)
            let location = try #require(created.headers["location"])
            let rest = Array(file.stream[50_000...])
            let done = try await tus.patch(location, offset: 50_000, rest, as: ann, checksum: Array(SHA256.hash(data: rest)))
            #expect(done.status == 204 && done.headers["upload-offset"] == String(file.stream.count))
            #expect(try await tus.head(location, as: ann).status == 404, "a finished upload is a file now")

            let list = try await api.call("GET", "/api/v1/vault/files", token: ann.token)
            let files = try #require(TestJSON.value(list.body, path: ["files"]) as? [[String: Any]])
            #expect(files.count == 1 && files[0]["id"] as? String == file.fileId && files[0]["size"] as? Int == file.stream.count)
            #expect(TestJSON.int(list.body, path: ["used"]) == file.stream.count)
            #expect(files[0]["sha256"] as? String == Base64URL.encode(Array(SHA256.hash(data: file.stream))))
            let wrap = try Wire.bytes(files[0], "wrap")
            let meta = try VaultMetadata.open(try Wire.bytes(files[0], "meta"), fileKey: file.fileKey, fileId: file.fileIdBytes)
            #expect(meta.name == "report.pdf" && meta.size == 300_000)

            let download = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: ann.token)
            #expect(download.status == 200 && download.bytes == file.stream)
            #expect(try file.open(download.bytes, by: ann, wrap: wrap) == file.content)
            let part = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: ann.token, headers: ["Range": "bytes=100-199"])
            #expect(part.status == 206 && part.bytes == Array(file.stream[100..<200]))
            #expect(part.headers["content-range"] == "bytes 100-199/\(file.stream.count)")
            let tail = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: ann.token, headers: ["Range": "bytes=-10"])
            #expect(tail.status == 206 && tail.bytes == Array(file.stream.suffix(10)))
            let bad = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: ann.token, headers: ["Range": "bytes=999999999-"])
            #expect(bad.status == 416)
            let events = try await api.events(ann.token, type: "vault.file.created")
            #expect(events.count == 1 && events[0]["fileId"] as? String == file.fileId)

            #expect(try await api.call("DELETE", "/api/v1/vault/files/\(file.fileId)", token: ann.token).status == 204)
            #expect(try await api.call("GET", "/api/v1/vault/files/\(file.fileId)", token: ann.token).status == 404)
            #expect(TestJSON.int(try await api.call("GET", "/api/v1/vault/files", token: ann.token).body, path: ["used"]) == 0)
        }
    }

    @Test("an upload resumes from its offset after a wrong offset, a bad checksum, and a connection cut mid-way")
    func resume() async throws {
        let harness = ServerHarness(.sqlite)
        try await harness.run { api, _ in
            let bo = try await Member.register("bob", on: api)
            let tus = Tus(api: api)
            let file = try SealedFile(size: 2_000_000, owner: bo)
            let location = try #require(try await tus.create(file, as: bo).headers["location"])
            #expect(try await tus.patch(location, offset: 0, Array(file.stream[0..<100_000]), as: bo).status == 204)
            #expect(try await tus.patch(location, offset: 5, Array(file.stream[5..<10]), as: bo).status == 409)
            let corrupt = Array(file.stream[100_000..<200_000])
            let refused = try await tus.patch(location, offset: 100_000, corrupt, as: bo, checksum: Array(SHA256.hash(data: [1, 2, 3])))
            #expect(refused.status == 460)
            #expect(try await tus.head(location, as: bo).headers["upload-offset"] == "100000", "a failed checksum keeps nothing")

            // The connection breaks after part of a PATCH: the bytes that arrived are kept.
            let sent = 700_000
            try await RawHTTP.sendPartial(to: api.baseURL, path: location, headers: [
                "Authorization": "Bearer \(bo.token)", "Tus-Resumable": "1.0.0", "Upload-Offset": "100000",
                "Content-Type": "application/offset+octet-stream", "Content-Length": String(file.stream.count - 100_000),
            ], body: Array(file.stream[100_000..<(100_000 + sent)]))
            // The server commits what arrived once it notices the cut; a loaded machine may take a while.
            var offset = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                offset = Int(try await tus.head(location, as: bo).headers["upload-offset"] ?? "0") ?? 0
                if offset > 100_000 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(offset > 100_000 && offset <= 100_000 + sent, "kept \(offset - 100_000) of the \(sent) bytes that arrived")
            let done = try await tus.patch(location, offset: offset, Array(file.stream[offset...]), as: bo)
            #expect(done.status == 204)
            let list = try await api.call("GET", "/api/v1/vault/files", token: bo.token)
            let entry = try #require((TestJSON.value(list.body, path: ["files"]) as? [[String: Any]])?.first)
            let download = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: bo.token)
            #expect(try file.open(download.bytes, by: bo, wrap: try Wire.bytes(entry, "wrap")) == file.content)
        }
    }

    @Test("size, quota and input limits answer 4xx before anything is stored")
    func limits() async throws {
        let harness = ServerHarness(.sqlite, extra: [.vaultMaxFileSize: "1000000", .vaultQuota: "1500000"])
        try await harness.run { api, store in
            let cy = try await Member.register("cyd", on: api)
            let tus = Tus(api: api)
            let big = try SealedFile(size: 1_200_000, owner: cy)
            let tooBig = try await tus.create(big, as: cy)
            #expect(tooBig.status == 413 && tooBig.body.contains("file-too-large"))
            let first = try SealedFile(size: 900_000, owner: cy)
            try await tus.upload(first, as: cy)
            let second = try SealedFile(size: 700_000, owner: cy)
            let over = try await tus.create(second, as: cy)
            #expect(over.status == 413 && over.body.contains("quota-exceeded"))
            let small = try SealedFile(size: 10, owner: cy)
            #expect(try await tus.create(small, as: cy, length: 20).status == 422, "no vault payload is 20 bytes long")
            #expect(try await tus.create(small, as: cy, extra: ["Tus-Resumable": "0.2.2"]).status == 412)
            #expect(try await tus.create(small, as: cy, metadata: "fileId \(Data("short".utf8).base64EncodedString())").status == 422)
            #expect(try await tus.create(small, as: cy, metadata: small.metadata() + ",path \(Data("../x".utf8).base64EncodedString())").status == 422)
            #expect(try await tus.create(small, as: cy, metadata: small.metadata(level: "everyone")).status == 422)
            #expect(try await tus.create(small, as: cy, metadata: small.metadata(expiresAt: 5)).status == 422)
            #expect(try await api.send("POST", Tus.base, bytes: nil, headers: ["Tus-Resumable": "1.0.0", "Upload-Length": "10"]).status == 401)
            try await tus.upload(small, as: cy)
            #expect(try await tus.create(small, as: cy).status == 409, "a file id is used once")
            let count = try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM vault_uploads").first()!.decode(column: "n", as: Int.self) }
            #expect(count == 0, "refused uploads left nothing behind")
            // An upload that is too long for its declared length.
            let location = try #require(try await tus.create(try SealedFile(size: 100, owner: cy), as: cy).headers["location"])
            #expect(try await tus.patch(location, offset: 0, SecureRandom.bytes(500), as: cy).status == 413)
            #expect(try await tus.head(location, as: cy).headers["upload-offset"] == "0")
            #expect(try await api.send("DELETE", location, bytes: nil, token: cy.token, headers: ["Tus-Resumable": "1.0.0"]).status == 204)
            #expect(try await tus.head(location, as: cy).status == 404)
        }
    }

    @Test("nobody but the owner, members for conversation files, and link holders learns a file exists", arguments: Engine.available)
    func authorization(engine: Engine) async throws {
        try await ServerHarness(engine, extra: [.logLevel: ProcessInfo.processInfo.environment["VAULT_DEBUG"] == nil ? "error" : "trace"]).run { api, _ in
            let dee = try await Member.register("dee", on: api)
            let eve = try await Member.register("eve", on: api)
            let fay = try await Member.register("fay", on: api)
            let tus = Tus(api: api)
            let privateFile = try SealedFile(size: 1000, owner: dee)
            try await tus.upload(privateFile, as: dee)
            let (conversation, chain) = try await dee.create(with: [fay], on: api)
            let shared = try SealedFile(size: 2000, owner: dee)
            try await tus.upload(shared, as: dee, metadata: shared.metadata(level: "conversation", conversationId: conversation))
            // Eve, a stranger, cannot even tell the files exist; nor can she upload into the conversation.
            for file in [privateFile, shared] {
                for path in ["/api/v1/vault/files/\(file.fileId)", "/api/v1/vault/files/\(file.fileId)/content", "/api/v1/vault/files/\(file.fileId)/links"] {
                    #expect(try await api.call("GET", path, token: eve.token).status == 404, "\(path)")
                }
                #expect(try await api.call("DELETE", "/api/v1/vault/files/\(file.fileId)", token: eve.token).status == 404)
                #expect(try await api.call("PATCH", "/api/v1/vault/files/\(file.fileId)", json: "{\"level\":\"public\"}", token: eve.token).status == 404)
            }
            #expect(try await api.call("GET", "/api/v1/vault/files?conversation=\(conversation)", token: eve.token).status == 404)
            let sneaky = try SealedFile(size: 10, owner: eve)
            #expect(try await tus.create(sneaky, as: eve, metadata: sneaky.metadata(level: "conversation", conversationId: conversation)).status == 404)
            // Fay, a member, reads the conversation file (without the owner's wrap), not the private one.
            let seen = try await api.call("GET", "/api/v1/vault/files/\(shared.fileId)", token: fay.token)
            #expect(seen.status == 200 && TestJSON.value(seen.body, path: ["wrap"]) == nil)
            let bytes = try await api.send("GET", "/api/v1/vault/files/\(shared.fileId)/content", bytes: nil, token: fay.token)
            #expect(bytes.status == 200 && bytes.bytes == shared.stream)
            let listed = try await api.call("GET", "/api/v1/vault/files?conversation=\(conversation)", token: fay.token)
            #expect((TestJSON.value(listed.body, path: ["files"]) as? [Any])?.count == 1)
            #expect(try await api.call("GET", "/api/v1/vault/files/\(privateFile.fileId)", token: fay.token).status == 404)
            #expect(try await api.call("DELETE", "/api/v1/vault/files/\(shared.fileId)", token: fay.token).status == 404)
            #expect(try await api.call("POST", "/api/v1/vault/files/\(shared.fileId)/links", json: "{}", token: fay.token).status != 201)
            // A link made by the owner leaves the file in its conversation: public, and still Fay's
            // to read and list there (a stranger still learns nothing).
            _ = try await TestLink.make(for: shared, by: dee, password: nil, maxDownloads: 0, on: api)
            let linked = try await api.call("GET", "/api/v1/vault/files/\(shared.fileId)", token: fay.token)
            #expect(linked.status == 200 && TestJSON.string(linked.body, path: ["level"]) == "public")
            #expect(TestJSON.string(linked.body, path: ["conversationId"]) == conversation)
            #expect(try await api.send("GET", "/api/v1/vault/files/\(shared.fileId)/content", bytes: nil, token: fay.token).bytes == shared.stream)
            #expect((TestJSON.value(try await api.call("GET", "/api/v1/vault/files?conversation=\(conversation)", token: fay.token).body, path: ["files"]) as? [Any])?.count == 1)
            #expect(try await api.call("GET", "/api/v1/vault/files/\(shared.fileId)", token: eve.token).status == 404)
            // A public file moves only into a conversation of the owner's.
            let (elsewhere, _) = try await eve.create(with: [fay], on: api)
            #expect(try await api.call("PATCH", "/api/v1/vault/files/\(shared.fileId)", json: "{\"level\":\"public\",\"conversationId\":\"\(elsewhere)\"}", token: dee.token).status == 422)
            #expect(try await api.call("PATCH", "/api/v1/vault/files/\(shared.fileId)", json: "{\"level\":\"private\",\"conversationId\":\"\(conversation)\"}", token: dee.token).status == 422)
            // Removed from the conversation, Fay loses access.
            let removal = try dee.op(chain, .remove, target: fay)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conversation)/ops", json: Wire.append(removal), token: dee.token).status == 201)
            #expect(try await api.call("GET", "/api/v1/vault/files/\(shared.fileId)/content", token: fay.token).status == 404)
            // Made private again, the file is the owner's alone.
            #expect(try await api.call("PATCH", "/api/v1/vault/files/\(shared.fileId)", json: "{\"level\":\"private\"}", token: dee.token).status == 200)
            #expect(try await api.call("GET", "/api/v1/vault/files?conversation=\(conversation)", token: dee.token).body.contains(shared.fileId) == false)
        }
    }

    @Test("share links: opened with the key (and password), limited, recorded (uses and the owner's activity), and dead once revoked", arguments: Engine.available)
    func links(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let gil = try await Member.register("gil", on: api)
            let hal = try await Member.register("hal", on: api)
            let file = try SealedFile(size: 5000, owner: gil)
            try await Tus(api: api).upload(file, as: gil)
            func makeLink(password: String?, maxDownloads: Int = 0) async throws -> (id: String, key: [UInt8], salt: [UInt8]?) {
                try await TestLink.make(for: file, by: gil, password: password, maxDownloads: maxDownloads, on: api)
            }
            // The holder's side, without an account: parameters, open, download, decrypt.
            func fetch(_ link: (id: String, key: [UInt8], salt: [UInt8]?), password: String?) async throws -> (status: Int, content: [UInt8]?) {
                let parameters = try await api.call("GET", "/api/v1/vault/links/\(link.id)")
                guard parameters.status == 200 else { return (parameters.status, nil) }
                let salt = TestJSON.string(parameters.body, path: ["salt"]).flatMap(Base64URL.decode).map(Array.init)
                let secrets = try VaultKeys.linkSecrets(linkKey: link.key, password: password, salt: salt)
                let opened = try await api.call("POST", "/api/v1/vault/links/\(link.id)/open", json: Wire.json(["access": Base64URL.encode(secrets.access)]))
                guard opened.status == 200, let object = TestJSON.value(opened.body, path: []) as? [String: Any] else { return (opened.status, nil) }
                let fileKey = try VaultKeys.unwrapFromLink(try Wire.bytes(object, "wrap"), linkId: Array(Base64URL.decode(link.id)!), secrets: secrets)
                let meta = try VaultMetadata.open(try Wire.bytes(object, "meta"), fileKey: fileKey, fileId: file.fileIdBytes)
                let download = try await api.send("GET", "/api/v1/vault/links/\(link.id)/content", bytes: nil,
                                                  headers: ["Circle-Link-Ticket": try #require(object["ticket"] as? String)])
                guard download.status == 200 else { return (download.status, nil) }
                var opener = VaultStreamOpener(fileKey: fileKey, size: meta.size)
                let plain = try opener.open(download.bytes)
                try opener.finish()
                return (200, plain)
            }
            let open = try await makeLink(password: nil)
            #expect(try await fetch(open, password: nil).content == file.content)
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/vault/files/\(file.fileId)", token: gil.token).body, path: ["level"]) == "public")
            let guarded = try await makeLink(password: "tulip", maxDownloads: 1)
            #expect(try await fetch(guarded, password: "rose").status == 403)
            #expect(try await fetch(guarded, password: "tulip").content == file.content)
            #expect(try await fetch(guarded, password: "tulip").status == 404, "one download allowed")
            // A download needs a ticket from `open`: the access value alone, or a made-up ticket, is
            // refused, and every use is recorded for the owner.
            let opened = try await api.call("POST", "/api/v1/vault/links/\(open.id)/open", json: Wire.json(["access": Base64URL.encode(SecureRandom.bytes(32))]))
            #expect(opened.status == 403)
            #expect(try await api.send("GET", "/api/v1/vault/links/\(open.id)/content", bytes: nil, headers: ["Circle-Link-Access": Base64URL.encode(SecureRandom.bytes(32))]).status == 403)
            #expect(try await api.send("GET", "/api/v1/vault/links/\(open.id)/content", bytes: nil, headers: ["Circle-Link-Ticket": Base64URL.encode(SecureRandom.bytes(32))]).status == 403)
            let history = try await api.call("GET", "/api/v1/vault/files/\(file.fileId)/links", token: gil.token)
            let links = try #require(TestJSON.value(history.body, path: ["links"]) as? [[String: Any]])
            #expect(links.count == 2)
            let outcomes = links.flatMap { ($0["uses"] as? [[String: Any]] ?? []).compactMap { $0["outcome"] as? String } }
            #expect(outcomes.filter { $0 == "download" }.count == 2 && !outcomes.contains("refused"))
            #expect(links.map { ($0["failedAttempts"] as? Int) ?? -1 }.reduce(0, +) == 2)
            #expect(try await api.call("GET", "/api/v1/vault/files/\(file.fileId)/links", token: hal.token).status == 404)
            #expect(try await api.call("DELETE", "/api/v1/vault/links/\(open.id)", token: hal.token).status == 404)
            // Revoked: the link is gone, and the server keeps nothing that could open it.
            #expect(try await api.call("DELETE", "/api/v1/vault/links/\(open.id)", token: gil.token).status == 204)
            #expect(try await fetch(open, password: nil).status == 404)
            let kept = try await store.read { db in
                try await db.raw("SELECT wrap, verifier FROM vault_links WHERE id = \(bind: open.id)").first()
            }
            #expect(try kept?.decode(column: "wrap", as: Data?.self) == nil && kept?.decode(column: "verifier", as: Data?.self) == nil)
            // The owner's security activity: every link made, opened, refused and revoked, with
            // an alert for the download that took a link past half its limit.
            let activity = try await api.call("GET", "/api/v1/activity?limit=100", token: gil.token)
            let entries = try #require(TestJSON.value(activity.body, path: ["entries"]) as? [[String: Any]])
            let kinds = entries.compactMap { $0["kind"] as? String }
            #expect(kinds.filter { $0 == "link.created" }.count == 2)
            #expect(kinds.filter { $0 == "link.opened" }.count == 4)
            #expect(kinds.filter { $0 == "link.password-failed" }.count == 2)
            #expect(kinds.filter { $0 == "link.revoked" }.count == 1)
            let alerts = entries.filter { $0["alert"] as? Bool == true }
            #expect(alerts.count == 1 && (alerts.first?["details"] as? String)?.contains("1 of 1") == true, "\(alerts)")
            let hals = try await api.call("GET", "/api/v1/activity?limit=100", token: hal.token)
            #expect((TestJSON.value(hals.body, path: ["entries"]) as? [[String: Any]])?.contains { ($0["kind"] as? String)?.hasPrefix("link.") == true } == false)
            // Bad input changes nothing.
            #expect(try await api.call("POST", "/api/v1/vault/files/\(file.fileId)/links", json: "{\"linkId\":\"x\",\"wrap\":\"y\",\"verifier\":\"z\"}", token: gil.token).status == 422)
            #expect(try await api.call("POST", "/api/v1/vault/links/\(open.id)/open", json: "{\"access\":1}").status == 400)
            #expect(try await api.call("GET", "/api/v1/vault/links/not-a-link").status == 404)
        }
    }

    @Test("share-link guesses: refusals are one row per address and never push a real use out; past 20 an address waits (429 with Retry-After) while the link opens from elsewhere; a right value costs nothing", arguments: Engine.available)
    func linkGuesses(engine: Engine) async throws {
        try await ServerHarness(engine, extra: [.httpTrustForwardedFor: "true"]).run { api, store in
            let ivy = try await Member.register("ivy", on: api)
            let file = try SealedFile(size: 2000, owner: ivy)
            try await Tus(api: api).upload(file, as: ivy)
            let link = try await TestLink.make(for: file, by: ivy, password: nil, maxDownloads: 0, on: api)
            let right = try VaultKeys.linkSecrets(linkKey: link.key, password: nil, salt: nil).access
            func open(_ access: [UInt8], from address: String) async throws -> HTTPProbe.Reply {
                try await api.call("POST", "/api/v1/vault/links/\(link.id)/open", json: Wire.json(["access": Base64URL.encode(access)]),
                                   headers: ["X-Forwarded-For": address])
            }
            // Right values from one address, any number of them, never make it wait.
            for _ in 0..<25 { #expect(try await open(right, from: "10.1.1.1").status == 200) }
            // Twenty wrong values are free, the 21st starts a wait (1 s, doubling): guessing meets
            // a 429 (on a slow machine a wait may end before the next guess, which then starts a
            // longer one).
            var statuses: [Int] = []
            var throttled: HTTPProbe.Reply?
            var throttledAt = ContinuousClock.now
            for _ in 0..<60 where throttled == nil {
                let reply = try await open(SecureRandom.bytes(32), from: "6.6.6.6")
                if reply.status == 429 { throttled = reply; throttledAt = .now } else { statuses.append(reply.status) }
            }
            #expect(statuses.count >= 21 && statuses.allSatisfy { $0 == 403 }, "\(statuses)")
            #expect(Int(throttled?.headers["retry-after"] ?? "") ?? 0 >= 1)
            let rightFromThere = try await open(right, from: "6.6.6.6")
            if ContinuousClock.now - throttledAt < .milliseconds(500) {
                #expect(rightFromThere.status == 429, "the guessing address waits even with the right value")
            }
            #expect(try await open(right, from: "10.2.2.2").status == 200, "the link opens from elsewhere")
            let history = try await api.call("GET", "/api/v1/vault/files/\(file.fileId)/links", token: ivy.token)
            let view = try #require((TestJSON.value(history.body, path: ["links"]) as? [[String: Any]])?.first)
            let uses = try #require(view["uses"] as? [[String: Any]])
            #expect(uses.count == 26 + (rightFromThere.status == 200 ? 1 : 0) && uses.allSatisfy { $0["outcome"] as? String == "open" })
            #expect(uses.first?["ip"] as? String == "10.2.2.2")
            let failures = try #require(view["failures"] as? [[String: Any]])
            let refusedHere = statuses.filter { $0 == 403 }.count
            #expect(failures.count == 1 && failures.first?["ip"] as? String == "6.6.6.6" && failures.first?["attempts"] as? Int == refusedHere)
            #expect(view["failedAttempts"] as? Int == refusedHere)
            let rows = try await store.read { db in
                try await db.raw("SELECT COUNT(*) AS n FROM vault_link_failures WHERE link_id = \(bind: link.id)").first()?.decode(column: "n", as: Int.self)
            }
            #expect(rows == 1)
        }
    }

    @Test("a share link's download limit holds against ranges: a ticket from open counts one download and delivers less than two copies in any ranges; resumes work within it; another open gets nothing once the limit is spent", arguments: Engine.available)
    func linkRanges(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let jo = try await Member.register("joy", on: api)
            let file = try SealedFile(size: 40_000, owner: jo)
            try await Tus(api: api).upload(file, as: jo)
            let size = file.stream.count
            let link = try await TestLink.make(for: file, by: jo, password: nil, maxDownloads: 1, on: api)
            let secrets = try VaultKeys.linkSecrets(linkKey: link.key, password: nil, salt: nil)
            func openTicket() async throws -> String? {
                let opened = try await api.call("POST", "/api/v1/vault/links/\(link.id)/open", json: Wire.json(["access": Base64URL.encode(secrets.access)]))
                return TestJSON.string(opened.body, path: ["ticket"])
            }
            func get(_ range: String?, ticket: String) async throws -> HTTPProbe.Reply {
                var headers = ["Circle-Link-Ticket": ticket]
                if let range { headers["Range"] = range }
                return try await api.send("GET", "/api/v1/vault/links/\(link.id)/content", bytes: nil, headers: headers)
            }
            // A resumed download: the first part, then the rest, is one whole copy.
            let ticket = try #require(try await openTicket())
            let head = try await get("bytes=0-9999", ticket: ticket)
            #expect(head.status == 206 && head.bytes == Array(file.stream[0..<10_000]))
            let tail = try await get("bytes=10000-", ticket: ticket)
            #expect(tail.status == 206 && tail.bytes == Array(file.stream[10_000...]))
            // Every way of asking again under the same ticket (suffix, offset, whole): what leaves
            // in all stays under two copies, and no request returns the whole file again.
            var delivered = head.bytes.count + tail.bytes.count
            for range in ["bytes=-\(size)", "bytes=-\(size * 4)", "bytes=1-", "bytes=0-", nil, "bytes=-5000", "bytes=-5000", "bytes=-5000"] {
                let reply = try await get(range, ticket: ticket)
                #expect(reply.status == 206 || reply.status == 403, "\(range ?? "whole"): \(reply.status)")
                if reply.status == 206 { delivered += reply.bytes.count; #expect(reply.bytes.count < size) }
            }
            #expect(delivered < 2 * size, "\(delivered) bytes of a \(size)-byte file left under one ticket")
            // The link's one download is spent: a new ticket is issued only while it is live, and
            // none downloads.
            if let again = try await openTicket() {
                #expect(try await get("bytes=-\(size)", ticket: again).status == 404)
                #expect(try await get(nil, ticket: again).status == 404)
            }
            let count = try await store.read { db in
                try await db.raw("SELECT downloads FROM vault_links WHERE id = \(bind: link.id)").first()?.decode(column: "downloads", as: Int64.self)
            }
            #expect(count == 1)
            // A range the file does not have is 416 and counts nothing.
            let other = try await TestLink.make(for: file, by: jo, password: nil, maxDownloads: 1, on: api)
            let otherSecrets = try VaultKeys.linkSecrets(linkKey: other.key, password: nil, salt: nil)
            let otherTicket = try #require(TestJSON.string(try await api.call("POST", "/api/v1/vault/links/\(other.id)/open",
                                                                               json: Wire.json(["access": Base64URL.encode(otherSecrets.access)])).body, path: ["ticket"]))
            #expect(try await api.send("GET", "/api/v1/vault/links/\(other.id)/content", bytes: nil, headers: ["Circle-Link-Ticket": otherTicket, "Range": "bytes=\(size)-"]).status == 416)
            // A ticket is for its own link only.
            #expect(try await api.send("GET", "/api/v1/vault/links/\(other.id)/content", bytes: nil, headers: ["Circle-Link-Ticket": ticket]).status == 403)
            let whole = try await api.send("GET", "/api/v1/vault/links/\(other.id)/content", bytes: nil, headers: ["Circle-Link-Ticket": otherTicket])
            #expect(whole.status == 200 && whole.bytes == file.stream)
        }
    }

    @Test("cleanup removes expired files and stale uploads with their blobs and quota, and revokes spent links")
    func cleanup() async throws {
        let harness = ServerHarness(.sqlite)
        try await harness.run { api, store in
            let ida = try await Member.register("ida", on: api)
            let tus = Tus(api: api)
            let soon = Timestamp.now().millis + 60_000
            let expiring = try SealedFile(size: 3000, owner: ida)
            try await tus.upload(expiring, as: ida, metadata: expiring.metadata(expiresAt: soon))
            let keeper = try SealedFile(size: 1000, owner: ida)
            try await tus.upload(keeper, as: ida)
            let stale = try SealedFile(size: 4000, owner: ida)
            let location = try #require(try await tus.create(stale, as: ida).headers["location"])
            #expect(try await tus.patch(location, offset: 0, Array(stale.stream[0..<100]), as: ida).status == 204)
            let blob = harness.vaultPath + "/files/" + Hex.encode(expiring.fileIdBytes).prefix(2) + "/" + Hex.encode(expiring.fileIdBytes)
            #expect(FileManager.default.fileExists(atPath: blob))

            let later = FixedClock(Timestamp(millis: Timestamp.now().millis + 2 * 86_400_000))
            let sweeper = VaultSweeper(store: store, blobs: try VaultBlobs.open(path: harness.vaultPath), clock: later, logger: TestServers.quietLogger)
            let swept = try await sweeper.sweep()
            #expect(swept.files == 1 && swept.uploads == 1)
            #expect(!FileManager.default.fileExists(atPath: blob))
            #expect(!FileManager.default.fileExists(atPath: harness.vaultPath + "/uploads/" + location.split(separator: "/").last!))
            let list = try await api.call("GET", "/api/v1/vault/files", token: ida.token)
            #expect(TestJSON.int(list.body, path: ["used"]) == keeper.stream.count)
            #expect((TestJSON.value(list.body, path: ["files"]) as? [Any])?.count == 1)
            let again = try await sweeper.sweep()
            #expect(again.files == 0 && again.uploads == 0 && again.links == 0)
        }
    }

    @Test("with vault.idleFileRetention, cleanup deletes files nobody downloaded for that long, with their blobs and quota; a download keeps a file", arguments: Engine.available)
    func idleFiles(engine: Engine) async throws {
        let harness = ServerHarness(engine)
        try await harness.run { api, store in
            let ida = try await Member.register("ida", on: api)
            let jon = try await Member.register("jon", on: api)
            let (conversation, _) = try await ida.create(with: [jon], on: api)
            let tus = Tus(api: api)
            let idle = try SealedFile(size: 3000, owner: ida)
            try await tus.upload(idle, as: ida)
            let mine = try SealedFile(size: 1000, owner: ida)
            try await tus.upload(mine, as: ida)
            let shared = try SealedFile(size: 2000, owner: ida)
            try await tus.upload(shared, as: ida, metadata: shared.metadata(level: "conversation", conversationId: conversation))
            // Forty days pass; then the owner downloads one file and a member of its conversation another.
            let day: Int64 = 86_400_000
            try await store.write { db in
                try await db.raw("UPDATE vault_files SET created_at = created_at - \(bind: 40 * day), accessed_at = accessed_at - \(bind: 40 * day)").run()
            }
            #expect(try await api.send("GET", "/api/v1/vault/files/\(mine.fileId)/content", bytes: nil, token: ida.token).bytes == mine.stream)
            #expect(try await api.send("GET", "/api/v1/vault/files/\(shared.fileId)/content", bytes: nil, token: jon.token,
                                       headers: ["Range": "bytes=0-99"]).status == 206)
            let blobs = try VaultBlobs.open(path: harness.vaultPath)
            let blob = harness.vaultPath + "/files/" + Hex.encode(idle.fileIdBytes).prefix(2) + "/" + Hex.encode(idle.fileIdBytes)
            // Off by default: nothing idle goes.
            #expect(try await VaultSweeper(store: store, blobs: blobs, clock: SystemWallClock(), logger: TestServers.quietLogger).sweep().files == 0)
            let sweeper = VaultSweeper(store: store, blobs: blobs, clock: SystemWallClock(), logger: TestServers.quietLogger, idleRetention: .seconds(30 * 86_400))
            #expect(try await sweeper.sweep().files == 1)
            #expect(!FileManager.default.fileExists(atPath: blob))
            #expect(try await api.call("GET", "/api/v1/vault/files/\(idle.fileId)", token: ida.token).status == 404)
            for kept in [mine, shared] {
                #expect(try await api.call("GET", "/api/v1/vault/files/\(kept.fileId)", token: ida.token).status == 200)
            }
            let list = try await api.call("GET", "/api/v1/vault/files", token: ida.token)
            #expect(TestJSON.int(list.body, path: ["used"]) == mine.stream.count + shared.stream.count)
            #expect(try await sweeper.sweep().files == 0)
        }
    }
}

/// Share links made the way the web client makes them.
/// A request whose connection is closed before the body is complete. The blocking socket calls
/// run on their own thread, never on the (two-thread) cooperative pool the server also needs.
enum RawHTTP {
    static func sendPartial(to baseURL: String, path: String, headers: [String: String], body: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread {
                do {
                    try blockingSendPartial(to: baseURL, path: path, headers: headers, body: body)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }.start()
        }
    }

    static func blockingSendPartial(to baseURL: String, path: String, headers: [String: String], body: [UInt8]) throws {
        let connection = try LoopbackConnection(port: URL(string: baseURL)!.port!)
        defer { connection.close() }
        var head = "PATCH \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        try connection.write(Array((head + "\r\n").utf8) + body)
        usleep(300_000)
    }
}
