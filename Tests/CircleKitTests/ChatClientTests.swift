import CircleCore
import CircleCrypto
import CircleKit
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import GatewayStore
import CircleTestSupport
import Crypto
import Foundation
import SQLKit
import Testing

/// CircleKit's client against the real server: the protocol's client-side guarantees.
@Suite("CircleKit client: end to end, key changes, forks, rotation, devices")
struct ChatClientTests {
    static func client(_ name: String, _ api: APIClient, folder: URL) async throws -> ChatClient {
        try await ChatClient.register(server: api.baseURL, invite: nil, username: name, password: "pass-\(name)-123", deviceLabel: "test",
                                      statePath: folder.appendingPathComponent("\(name).json").path).0
    }

    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-kit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    static func count(_ sql: String, _ store: any DatabaseStore) async throws -> Int {
        try await store.read { db in try await db.raw(SQLQueryString(sql)).first()!.decode(column: "n", as: Int.self) }
    }

    @Test("two clients exchange messages both ways, live over the socket and on resume; the state file is 0600", arguments: Engine.available)
    func exchange(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let conv = try await alice.createConversation(.direct, with: ["bob"])
            try await alice.send("hello bob", to: conv)
            try await alice.send("are you there?", to: conv)
            // Ids CircleKit makes never start with "-", so they can be typed on a command line
            // (one in 64 random ids would).
            for _ in 0..<40 { #expect(!(try await alice.createConversation(.group, with: [])).hasPrefix("-")) }
            #expect(try await bob.receive(conv).messages.map(\.text) == ["hello bob", "are you there?"])
            try await bob.send("yes!", to: conv)
            #expect(try await alice.receive(conv).messages.map(\.text) == ["hello bob", "are you there?", "yes!"])

            // Live: Bob watches; Alice sends; Bob sees each message once, decrypted.
            let received = Box()
            let watcher = Task {
                try await bob.watch { event in
                    if case .message(let message) = event, message.sender != (await bob.userId) { await received.append(message.text) }
                    return await received.count < 3
                }
            }
            for text in ["live 1", "live 2", "live 3"] { try await alice.send(text, to: conv) }
            try await watcher.value
            #expect(await received.items == ["live 1", "live 2", "live 3"])
            // Resume: a fresh client from the same state file continues after the last event.
            try await alice.send("while you were away", to: conv)
            let bobAgain = try ChatClient(statePath: folder.appendingPathComponent("bob.json").path)
            let resumed = Box()
            try await bobAgain.watch { event in
                if case .message(let message) = event { await resumed.append(message.text) }
                return await resumed.count < 1
            }
            #expect(await resumed.items == ["while you were away"])
            let mode = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("bob.json").path)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600)
            // Edits and deletes: by the author, naming the original by id and header hash.
            let original = try #require(try await alice.receive(conv).messages.first { $0.text == "while you were away" })
            try await alice.edit(original, to: "while you were out")
            let edit = try #require(try await bobAgain.receive(conv).messages.first)
            #expect(edit.kind == .edit && edit.text == "while you were out" && edit.applies(to: original))
            try await alice.delete(original)
            let delete = try #require(try await bobAgain.receive(conv).messages.first)
            #expect(delete.kind == .delete && delete.applies(to: original) && !delete.applies(to: edit))
            // The server dropped the original's and the edit's ciphertext: a late reader sees neither.
            let late = try await ChatClient.login(server: api.baseURL, username: "bob", password: "pass-bob-123", deviceLabel: "late", statePath: nil)
            let (history, lateRefused) = try await late.receive(conv)
            #expect(!history.contains { $0.text.contains("while you were") })
            // It learns that the message was deleted, from Alice's signed delete naming its header.
            #expect(history.contains { $0.id == original.id && $0.deleted && $0.headerHash == original.headerHash })
            #expect(lateRefused.isEmpty)
            // Nobody edits someone else's message.
            try await bob.send("mine", to: conv)
            let bobsOwn = try #require(try await alice.receive(conv).messages.last)
            #expect(bobsOwn.text == "mine")
            await #expect(throws: ProtocolError.self) { try await alice.edit(bobsOwn, to: "not mine") }
            // A message the server marks deleted on its own is reported missing, never shown deleted.
            try await store.write { db in
                try await db.raw("UPDATE messages SET ciphertext = \(bind: Data()), deleted_at = 1 WHERE id = \(bind: bobsOwn.id)").run()
            }
            let later = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "later", statePath: nil)
            let (seen, missing) = try await later.receive(conv)
            #expect(!seen.contains { $0.id == bobsOwn.id })
            #expect(missing.map(\.error) == ["a message from bob is missing: the server lists it as deleted, but they did not delete it"])
            // One the server leaves out altogether is a gap in its sender's chain, reported before the next one.
            try await store.write { db in
                try await db.raw("DELETE FROM messages WHERE conversation_id = \(bind: conv) AND seq = 2").run()
            }
            let latest = try await ChatClient.login(server: api.baseURL, username: "bob", password: "pass-bob-123", deviceLabel: "latest", statePath: nil)
            let gaps = try await latest.receive(conv).refused.map(\.error)
            #expect(gaps.contains("a message from alice before this one is missing: the server did not deliver it"))
            #expect(!history.contains { $0.missingBefore > 0 }, "an edit deleted with its original leaves no gap")
            // Safety numbers agree on both sides.
            #expect(try await alice.safetyNumber(with: "bob") == bob.safetyNumber(with: "alice"))
        }
    }

    @Test("a swapped X25519 or identity key in the directory: no envelope leaves and the user is warned", arguments: Engine.available)
    func swappedKeys(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alicePath = folder.appendingPathComponent("alice.json").path
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            _ = try await Self.client("carol", api, folder: folder)
            let conv = try await alice.createConversation(.group, with: ["bob"])
            try await alice.send("first", to: conv)
            let bobId = await bob.userId
            let original = try await store.read { db in try await db.raw("SELECT x25519_key, identity_key, kx_cert FROM users WHERE id = \(bind: bobId)").first()! }
            let originalX = try original.decode(column: "x25519_key", as: Data.self)
            func envelopesAtHead() async throws -> Int {
                try await Self.count("SELECT COUNT(*) AS n FROM key_envelopes e JOIN conversations c ON c.id = e.conversation_id WHERE e.epoch = \(Self.quote(Base64URL.encode(try await alice.chain(conv).epoch)))", store)
            }

            // The server swaps Bob's X25519 key for one it holds: the kx-cert no longer verifies.
            let mallory = Curve25519.KeyAgreement.PrivateKey()
            try await store.write { db in
                try await db.raw("UPDATE users SET x25519_key = \(bind: Data(mallory.publicKey.rawRepresentation)) WHERE id = \(bind: bobId)").run()
            }
            let aliceA = try ChatClient(statePath: alicePath)
            try await aliceA.add("carol", to: conv)
            await #expect(throws: ProtocolError.badSignature("the kx-cert of bob")) { try await aliceA.send("to a swapped key", to: conv) }
            #expect(try await envelopesAtHead() == 0, "no envelope left for the new epoch")
            // The server stops lying: sending works again.
            try await store.write { db in try await db.raw("UPDATE users SET x25519_key = \(bind: originalX) WHERE id = \(bind: bobId)").run() }
            try await ChatClient(statePath: alicePath).send("keys are fine again", to: conv)
            #expect(try await bob.receive(conv).messages.map(\.text) == ["first", "keys are fine again"])

            // A whole new identity for Bob, with a kx-cert it signed itself: the pin differs.
            let impostor = Curve25519.Signing.PrivateKey()
            let cert = try impostor.signature(for: CircleLabels.kxCertMessage(userId: bobId, x25519Public: Array(mallory.publicKey.rawRepresentation)))
            try await store.write { db in
                try await db.raw("""
                    UPDATE users SET identity_key = \(bind: Data(impostor.publicKey.rawRepresentation)), x25519_key = \(bind: Data(mallory.publicKey.rawRepresentation)),
                    kx_cert = \(bind: Data(cert)) WHERE id = \(bind: bobId)
                    """).run()
            }
            let aliceB = try ChatClient(statePath: alicePath)
            try await aliceB.remove("carol", from: conv)
            await #expect(throws: ChatAlarm.keyChanged(username: "bob")) { try await aliceB.send("to an impostor", to: conv) }
            #expect(await aliceB.pin(of: bobId)?.pendingChange != nil)
            #expect(try await envelopesAtHead() == 0)
            // Even after the user accepts the new key, the chain names Bob's old key: still nothing is sealed.
            try await aliceB.verify("bob", acceptNewKey: true)
            await #expect(throws: ChatAlarm.self) { try await aliceB.send("still not", to: conv) }
            #expect(try await envelopesAtHead() == 0)
        }
    }

    static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    @Test("the server rewriting a verified op or rolling the head back raises the fork alarm", arguments: Engine.available)
    func fork(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            _ = try await Self.client("carol", api, folder: folder)
            let mallory = try await Self.client("mallory", api, folder: folder)
            let conv = try await alice.createConversation(.group, with: ["bob"])
            try await alice.add("carol", to: conv)
            let verified = try await bob.chain(conv)
            #expect(verified.head == 2)
            // The server shows Bob a different op 2, genuinely signed by Alice (say, one it kept
            // from a conversation fork): Alice adds Mallory instead of Carol.
            let aliceState = try StateFile.load(folder.appendingPathComponent("alice.json").path)
            let aliceKey = try Curve25519.Signing.PrivateKey(rawRepresentation: aliceState.identitySeed.bytes)
            var other = try MembershipOp(bytes: verified.ops[2].bytes)
            let malloryId = await mallory.userId
            let malloryEntry = try await store.read { db in try await AccountDirectory.keys(for: [malloryId], in: db)[malloryId]! }
            other.target = malloryId
            other.targetFingerprint = IdentityFingerprint.of(malloryEntry.identityKey)
            let forged = try other.sign(with: aliceKey)
            try await store.write { db in
                try await db.raw("UPDATE membership_ops SET op = \(bind: Data(forged.bytes)), signature = \(bind: Data(forged.signature)) WHERE conversation_id = \(bind: conv) AND n = 2").run()
            }
            let bobFresh = try ChatClient(statePath: folder.appendingPathComponent("bob.json").path)
            await #expect(throws: ChatAlarm.self) { _ = try await bobFresh.chain(conv) }
            // A rolled-back head: op 2 withheld.
            try await store.write { db in
                try await db.raw("DELETE FROM membership_ops WHERE conversation_id = \(bind: conv) AND n = 2").run()
                try await db.raw("UPDATE conversations SET head_n = 1 WHERE id = \(bind: conv)").run()
            }
            await #expect(throws: ChatAlarm.self) { _ = try await bob.chain(conv) }
        }
    }

    @Test("a removed member receives no envelope, and every remaining sender's next message is on a new chain", arguments: Engine.available)
    func rotation(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let carol = try await Self.client("carol", api, folder: folder)
            let conv = try await alice.createConversation(.group, with: ["bob", "carol"])
            for client in [alice, bob, carol] { try await client.send("before from \(await client.username)", to: conv) }
            let before = try await alice.chain(conv).epoch
            try await alice.remove("carol", from: conv)
            let after = try await alice.chain(conv).epoch
            #expect(before != after)
            for client in [alice, bob] { try await client.send("after from \(await client.username)", to: conv) }
            let carolId = await carol.userId
            let toCarol = try await Self.count("SELECT COUNT(*) AS n FROM key_envelopes WHERE recipient_id = \(Self.quote(carolId)) AND epoch = \(Self.quote(Base64URL.encode(after)))", store)
            #expect(toCarol == 0)
            let newChains = try await Self.count("SELECT COUNT(DISTINCT sender_id) AS n FROM key_envelopes WHERE epoch = \(Self.quote(Base64URL.encode(after)))", store)
            #expect(newChains == 2, "Alice and Bob each started a chain in the new epoch")
            let headers = try await store.read { db in try await db.raw("SELECT header FROM messages WHERE seq > 3 ORDER BY seq").all().map { try MessageHeader(bytes: Array(try $0.decode(column: "header", as: Data.self))) } }
            #expect(headers.count == 2 && headers.allSatisfy { $0.epoch == after && $0.chainIndex == 0 })
            await #expect(throws: CircleAPIError.self) { _ = try await carol.receive(conv) }
            #expect(try await bob.receive(conv).messages.map(\.text) == ["before from alice", "before from bob", "before from carol", "after from alice", "after from bob"])
        }
    }

    @Test("pins and verified marks reach a new device through the encrypted blob; a member the server adds without an op gets no envelope", arguments: Engine.available)
    func pinsAndPhantomMembers(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let eve = try await Self.client("eve", api, folder: folder)
            let conv = try await alice.createConversation(.group, with: ["bob"])
            try await alice.verify("bob")
            let bobId = await bob.userId
            // A new device of Alice's knows Bob's key, verified, before asking the directory.
            let laptop = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "laptop", statePath: nil)
            let pin = await laptop.pin(of: bobId)
            let original = await alice.pin(of: bobId)
            #expect(pin?.verified == true && pin?.identityKey == original?.identityKey)
            let blob = try await store.read { db in try await db.raw("SELECT blob FROM pins").first()!.decode(column: "blob", as: Data.self) }
            #expect(blob.range(of: Data("bob".utf8)) == nil && blob.range(of: Data(bobId.utf8)) == nil)
            // The server slips Eve into the member table without an op: clients seal only to the chain.
            let eveId = await eve.userId
            try await store.write { db in
                try await db.raw("INSERT INTO conversation_members (conversation_id, user_id, role, fingerprint, joined_n, receipts) VALUES (\(bind: conv), \(bind: eveId), 1, \(bind: Data(count: 32)), 1, 1)").run()
            }
            try await laptop.send("for members only", to: conv)
            let toEve = try await Self.count("SELECT COUNT(*) AS n FROM key_envelopes WHERE recipient_id = \(Self.quote(eveId))", store)
            #expect(toEve == 0)
            let evesView = try await eve.receive(conv)
            #expect(evesView.messages.isEmpty, "Eve gets ciphertext she cannot open")
            #expect(try await bob.receive(conv).messages.map(\.text) == ["for members only"])
        }
    }

    @Test("a first contact is verified under the key the chain recorded: a directory that substitutes a group member's key raises a key-change warning, pins nothing, and Carol's messages open once it is honest", arguments: [Engine.sqlite])
    func firstContactUsesTheChainsKey(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let carol = try await Self.client("carol", api, folder: folder)
            let conv = try await alice.createConversation(.group, with: ["bob", "carol"])
            try await carol.send("from carol", to: conv)
            // The server's directory now answers for Carol with a key it holds (a valid kx-cert).
            let carolId = await carol.userId
            let real = try await store.read { db in try await db.raw("SELECT identity_key, x25519_key, kx_cert FROM users WHERE id = \(bind: carolId)").first()! }
            let fake = Curve25519.Signing.PrivateKey(), fakeAgreement = Curve25519.KeyAgreement.PrivateKey()
            let fakeX = Array(fakeAgreement.publicKey.rawRepresentation)
            let cert = try fake.signature(for: CircleLabels.kxCertMessage(userId: carolId, x25519Public: fakeX))
            try await store.write { db in
                try await db.raw("""
                    UPDATE users SET identity_key = \(bind: Data(fake.publicKey.rawRepresentation)), x25519_key = \(bind: Data(fakeX)),
                    kx_cert = \(bind: Data(cert)) WHERE id = \(bind: carolId)
                    """).run()
            }
            await #expect(throws: ChatAlarm.keyChanged(username: "carol")) { _ = try await bob.receive(conv) }
            #expect(await bob.pin(of: carolId) == nil, "the server's key was pinned")
            // Honest again: Carol's next message opens, under the key the chain recorded.
            try await store.write { db in
                try await db.raw("""
                    UPDATE users SET identity_key = \(bind: try real.decode(column: "identity_key", as: Data.self)),
                    x25519_key = \(bind: try real.decode(column: "x25519_key", as: Data.self)), kx_cert = \(bind: try real.decode(column: "kx_cert", as: Data.self))
                    WHERE id = \(bind: carolId)
                    """).run()
            }
            try await carol.send("and again", to: conv)
            let bobFresh = try await ChatClient.login(server: api.baseURL, username: "bob", password: "pass-bob-123", deviceLabel: "laptop", statePath: nil)
            #expect(try await bobFresh.receive(conv).messages.map(\.text) == ["from carol", "and again"])
        }
    }

    @Test("a conversation listed with another conversation's genesis (a valid chain under the wrong id) raises the fork alarm on a new device", arguments: [Engine.sqlite])
    func genesisNamesTheConversation(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            _ = try await Self.client("bob", api, folder: folder)
            let first = try await alice.createConversation(.group, with: ["bob"])
            let second = try await alice.createConversation(.group, with: ["bob"])
            try await store.write { db in
                try await db.raw("DELETE FROM membership_ops WHERE conversation_id = \(bind: second)").run()
                try await db.raw("""
                    INSERT INTO membership_ops (conversation_id, n, actor, op, signature, created_at)
                    SELECT \(bind: second), n, actor, op, signature, created_at FROM membership_ops WHERE conversation_id = \(bind: first)
                    """).run()
            }
            let laptop = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "laptop", statePath: nil)
            #expect(try await laptop.chain(first).head >= 1)
            await #expect(throws: ChatAlarm.self) { _ = try await laptop.chain(second) }
        }
    }

    @Test("a vault download refuses another file's entry served under the asked-for id (with that file's content too)", arguments: [Engine.sqlite])
    func vaultEntryIsTheOneAskedFor(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, _ in
            let alice = try await Self.client("alice", api, folder: folder)
            let wanted = folder.appendingPathComponent("contract.txt"), other = folder.appendingPathComponent("decoy.txt")
            try Data("the contract as signed".utf8).write(to: wanted)
            try Data("a decoy the server prefers".utf8).write(to: other)
            let wantedId = try await alice.vaultPut(path: wanted.path)
            let otherId = try await alice.vaultPut(path: other.path)
            let port = try #require(URLComponents(string: api.baseURL)?.port)
            // A server that answers for the wanted file (entry and content) with the decoy's.
            let nginx = try NginxProcess(gateways: [port], messaging: [port], extra: """
                location ^~ /api/v1/vault/files/\(wantedId) {
                    rewrite ^/api/v1/vault/files/[^/]+(.*)$ /api/v1/vault/files/\(otherId)$1 break;
                    proxy_pass http://gateway;
                }
                """)
            func check() async throws {
                try await nginx.waitUntilServing()
                // Signed in at the real address (login keys are bound to it), then talking to the other one.
                let statePath = folder.appendingPathComponent("laptop.json").path
                _ = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "laptop", statePath: statePath)
                var saved = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any])
                saved["server"] = nginx.baseURL
                try JSONSerialization.data(withJSONObject: saved).write(to: URL(fileURLWithPath: statePath))
                let laptop = try ChatClient(statePath: statePath)
                let out = folder.appendingPathComponent("out.txt").path
                await #expect(throws: ProtocolError.refused("the server answered with another file than the one asked for")) {
                    _ = try await laptop.vaultGet(wantedId, to: out)
                }
                #expect(!FileManager.default.fileExists(atPath: out))
                _ = try await laptop.vaultGet(otherId, to: out)
                #expect(try String(contentsOfFile: out, encoding: .utf8) == "a decoy the server prefers")
            }
            do {
                try await check()
            } catch {
                await nginx.stop()
                throw error
            }
            await nginx.stop()
        }
    }

    @Test("a server replaying another server's prelogin answer gets no key that signs in there; another address of the same server is refused before anything is sent", arguments: [Engine.sqlite])
    func loginKeysAreBoundToTheOrigin(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            _ = try await Self.client("alice", api, folder: folder)
            let port = try #require(URLComponents(string: api.baseURL)?.port)
            // Another server (here: a relay to the real one, so whatever key it collects is tried
            // there at once) that replays the real prelogin answer, its bound origin hidden.
            let relay = try NginxProcess(gateways: [port], messaging: [port], extra: """
                location = /api/v1/auth/prelogin {
                    proxy_pass http://gateway;
                    proxy_set_header Accept-Encoding "";
                    sub_filter_types application/json;
                    sub_filter_once off;
                    sub_filter '"origin"' '"replayed"';
                }
                """)
            let plain = try NginxProcess(gateways: [port], messaging: [port])
            func check() async throws {
                try await relay.waitUntilServing()
                try await plain.waitUntilServing()
                let before = try await Self.count("SELECT count(*) AS n FROM sessions", store)
                // The client derives for the relay's origin: the key is refused by the real server.
                await #expect(throws: CircleAPIError.self) {
                    _ = try await ChatClient.login(server: relay.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "phished", statePath: nil)
                }
                // Shown the real answer (origin and all) at another address, the client stops before deriving.
                await #expect(throws: ProtocolError.refused("this account signs in at \(try LoginKeys.origin(of: api.baseURL)), not at \(try LoginKeys.origin(of: plain.baseURL)): use that address")) {
                    _ = try await ChatClient.login(server: plain.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "elsewhere", statePath: nil)
                }
                #expect(try await Self.count("SELECT count(*) AS n FROM sessions", store) == before, "no session was made")
                // At its own address the account signs in.
                _ = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "home", statePath: nil)
            }
            do {
                try await check()
            } catch {
                await relay.stop()
                await plain.stop()
                throw error
            }
            await relay.stop()
            await plain.stop()
        }
    }

    @Test("an account made before the binding signs in once as it was made, and is bound by that sign-in (its old key then fails)", arguments: Engine.available)
    func unboundAccountIsBound(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            // Registered as an older client did: keys derived without an origin.
            let password = "pass-old-123"
            let info = try await api.call("GET", "/api/v1/server")
            let serverId = try #require(TestJSON.string(info.body, path: ["serverId"]))
            let salt = SecureRandom.bytes(32), userId = UUID().uuidString.lowercased()
            let kdf = LoginKeys.KDFParameters(name: LoginKeys.kdfName, iterations: LoginKeys.minimumIterations)
            let old = try LoginKeys.derive(password: password, origin: nil, serverId: serverId, username: "olde", serverSalt: salt, kdf: kdf)
            let bundle = KeyBundle(), recovery = RecoveryKey()
            let body: [String: Any] = [
                "userId": userId, "username": "olde", "displayName": "Olde", "authKey": Base64URL.encode(old.authKey), "salt": Base64URL.encode(salt),
                "bundle": Base64URL.encode(try bundle.seal(with: old.kek, userId: userId, label: KeyBundle.bundleLabel)),
                "recoveryBundle": Base64URL.encode(try bundle.seal(with: recovery.kek, userId: userId, label: KeyBundle.recoveryLabel)),
                "recoveryAuthKey": Base64URL.encode(recovery.authKey), "identityKey": Base64URL.encode(bundle.identity.publicKey.rawRepresentation),
                "x25519Key": Base64URL.encode(bundle.agreement.publicKey.rawRepresentation), "kxCert": Base64URL.encode(try bundle.kxCert(userId: userId)),
            ]
            #expect(try await api.call("POST", "/api/v1/auth/register", json: Wire.json(body)).status == 201)
            #expect(TestJSON.string(try await api.call("POST", "/api/v1/auth/prelogin", json: "{\"username\":\"olde\"}").body, path: ["origin"]) == nil)
            let first = try await ChatClient.login(server: api.baseURL, username: "olde", password: password, deviceLabel: "first", statePath: nil)
            #expect(await first.userId == userId)
            let origin = try LoginKeys.origin(of: api.baseURL)
            #expect(TestJSON.string(try await api.call("POST", "/api/v1/auth/prelogin", json: "{\"username\":\"olde\"}").body, path: ["origin"]) == origin)
            // The old key no longer signs in; the bound one does, and the bundle still opens.
            let stale = try await api.call("POST", "/api/v1/auth/login", json: Wire.json(["username": "olde", "authKey": Base64URL.encode(old.authKey)]))
            #expect(stale.status == 401)
            let again = try await ChatClient.login(server: api.baseURL, username: "olde", password: password, deviceLabel: "second", statePath: nil)
            #expect(await again.userId == userId)
            let newSalt = try #require(TestJSON.string(try await api.call("POST", "/api/v1/auth/prelogin", json: "{\"username\":\"olde\"}").body, path: ["salt"]))
            let bound = try LoginKeys.derive(password: password, origin: origin, serverId: serverId, username: "olde",
                                             serverSalt: Array(try #require(Base64URL.decode(newSalt))), kdf: kdf)
            let session = try await api.call("POST", "/api/v1/auth/login", json: Wire.json(["username": "olde", "authKey": Base64URL.encode(bound.authKey)]))
            let token = try #require(TestJSON.string(session.body, path: ["token"]))
            // Bound once: a second binding is refused.
            let twice = try await api.call("POST", "/api/v1/account/login-origin", json: Wire.json([
                "currentAuthKey": Base64URL.encode(bound.authKey), "authKey": Base64URL.encode(old.authKey), "salt": Base64URL.encode(salt),
                "bundle": Base64URL.encode(try bundle.seal(with: old.kek, userId: userId, label: KeyBundle.bundleLabel)), "origin": origin,
            ]), token: token)
            #expect(twice.status == 409)
            let kinds = try await store.read { db in
                try await db.raw("SELECT kind FROM activity_logs WHERE chain = \(bind: userId)").all().map { try $0.decode(column: "kind", as: String.self) }
            }
            #expect(kinds.filter { $0 == "login.bound" }.count == 1)
        }
    }

    @Test("a pins blob older than the device has seen is refused (rollback), and the device's pins stay as they were", arguments: [Engine.sqlite])
    func pinsRollback(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            _ = try await alice.createConversation(.direct, with: ["bob"])
            let aliceId = await alice.userId, bobId = await bob.userId
            let before = try await store.read { db in try await db.raw("SELECT version, blob FROM pins WHERE user_id = \(bind: aliceId)").first() }
            let oldVersion = try #require(try before?.decode(column: "version", as: Int64.self))
            let oldBlob = try #require(try before?.decode(column: "blob", as: Data.self))
            try await alice.verify("bob")
            let seen = await alice.pinsVersion
            #expect(seen > oldVersion)
            // The server serves the blob from before the verification, under its own version.
            try await store.write { db in
                try await db.raw("UPDATE pins SET version = \(bind: oldVersion), blob = \(bind: oldBlob) WHERE user_id = \(bind: aliceId)").run()
            }
            await #expect(throws: PinsRollback(served: oldVersion, seen: seen)) { try await alice.syncPins() }
            #expect(await alice.pin(of: bobId)?.verified == true)
            #expect(await alice.pinsVersion == seen)
        }
    }

    @Test("one client sending many messages at once posts each exactly once (none is taken for a lost one and sent again)", arguments: Engine.available)
    func concurrentSendsPostOnce(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let conv = try await alice.createConversation(.direct, with: ["bob"])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<4 {
                    group.addTask { for index in 0..<10 { try await alice.send("message \(task).\(index)", to: conv) } }
                }
                try await group.waitForAll()
            }
            #expect(await alice.resent == 0)
            #expect(try await Self.count("SELECT count(*) AS n FROM messages", store) == 40)
            let received = try await bob.receive(conv)
            #expect(received.messages.count == 40 && received.refused.isEmpty)
        }
    }

    @Test("presence, typing and alerts reach a watching client; the activity check passes, then catches a history the server rewrote", arguments: Engine.available)
    func presenceAndActivity(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let alice = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let conv = try await alice.createConversation(.direct, with: ["bob"])
            let seen = Box()
            let watcher = Task {
                try await alice.watch { event in
                    switch event {
                    case .presence(let presence) where presence.state == "busy": await seen.append("busy:\(presence.status?.text ?? "")")
                    case .alert(let kind, _): await seen.append("alert:\(kind)")
                    default: break
                    }
                    return await seen.count < 2
                }
            }
            // Bob is online while his client watches.
            let bobWatching = Task { try await bob.watch { _ in !Task.isCancelled } }
            defer { bobWatching.cancel() }
            let online = ContinuousClock.now + .seconds(30)
            while (try await alice.presence(of: ["bob"])).first?.presence.state != "online", ContinuousClock.now < online {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await bob.setPresence(.init(state: "busy", status: .init(emoji: "📞", text: "on a call")))
            // A second device of Alice's signs in: her watching client is alerted.
            _ = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "tablet",
                                           statePath: folder.appendingPathComponent("alice-tablet.json").path)
            // Bounded: a missing event fails the test instead of hanging it.
            let deadline = ContinuousClock.now + .seconds(30)
            while await seen.count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            watcher.cancel()
            let items = await seen.items
            #expect(Set(items) == ["busy:on a call", "alert:sign-in"], "\(items)")
            let bobs = try await alice.presence(of: ["bob"])
            #expect(bobs.first?.presence.state == "busy" && bobs.first?.presence.status?.emoji == "📞")
            _ = conv

            // The activity: verified, and remembered.
            let (entries, check) = try await alice.activity()
            #expect(entries.map(\.kind) == ["sign-in", "session.created"])
            #expect(check == .verified(head: 2))
            #expect(try await alice.activity().check == .verified(head: 2), "again, from the remembered head")
            // The server rewrites an entry this device verified (and its hash, as a careful
            // forger would): the next view does not extend what was seen.
            try await store.write { db in
                try await db.raw("UPDATE activity_logs SET kind = 'sign-out', hash = \(bind: Data(SecureRandom.bytes(32))) WHERE chain = \(bind: await alice.userId) AND seq = 2").run()
            }
            guard case .rewritten(let seq, _) = try await alice.activity().check else { Issue.record("the rewrite went unnoticed"); return }
            #expect(seq == 2)
        }
    }

    @Test("two devices of one user sending at once never share a chain, so never reuse a key and nonce", arguments: Engine.available)
    func twoDevices(engine: Engine) async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ServerHarness(engine).run { api, store in
            let phone = try await Self.client("alice", api, folder: folder)
            let bob = try await Self.client("bob", api, folder: folder)
            let laptop = try await ChatClient.login(server: api.baseURL, username: "alice", password: "pass-alice-123", deviceLabel: "laptop",
                                                    statePath: folder.appendingPathComponent("alice-laptop.json").path)
            let conv = try await phone.createConversation(.direct, with: ["bob"])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for device in [phone, laptop] {
                    group.addTask { for index in 0..<15 { try await device.send("message \(index)", to: conv) } }
                }
                try await group.waitForAll()
            }
            let headers = try await store.read { db in try await db.raw("SELECT header FROM messages").all().map { try MessageHeader(bytes: Array(try $0.decode(column: "header", as: Data.self))) } }
            #expect(headers.count == 30)
            #expect(Set(headers.map(\.deviceId)).count == 2)
            #expect(Set(headers.map { "\($0.deviceId)/\($0.generation)/\($0.chainIndex)" }).count == 30)
            let received = try await bob.receive(conv)
            #expect(received.messages.count == 30 && received.refused.isEmpty)
            #expect(Set(received.messages.map(\.text)).count == 15)
        }
    }
}

/// Collects values across tasks.
actor Box {
    private(set) var items: [String] = []
    var count: Int { items.count }
    func append(_ item: String) { items.append(item) }
}
