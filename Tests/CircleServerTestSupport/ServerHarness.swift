import AllInOne
import CircleConfig
import CircleCore
import CircleKit
import CircleProtocol
import CircleStore
import CircleTestSupport
import Configuration
import Crypto
import Foundation
import HummingbirdTesting
import Testing
import ServiceLifecycle

/// Which database the server under test runs on.
package enum Engine: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres
    package var testDescription: String { rawValue }

    /// SQLite always; PostgreSQL (with Redis) whenever `make test` provides them (always in CI).
    package static var available: [Engine] { TestServers.bothEnabled ? [.sqlite, .postgres] : [.sqlite] }
}

/// The real server (`circle serve`'s composition: every service in one process) on a free port,
/// on SQLite in a temporary folder or on the test PostgreSQL and Redis.
package struct ServerHarness {
    package let engine: Engine
    package let folder: URL
    package let extra: [CircleConfigKey: String]
    /// Which background services the server runs (all by default).
    package let keep: @Sendable (any Service) -> Bool

    package init(_ engine: Engine, extra: [CircleConfigKey: String] = [:], keepingServices keep: @escaping @Sendable (any Service) -> Bool = { _ in true }) {
        self.engine = engine
        self.extra = extra
        self.keep = keep
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-messaging-\(UUID().uuidString)")
    }

    /// Where the vault keeps its blobs in this harness.
    package var vaultPath: String { folder.appendingPathComponent("vault").path }

    package func values() async throws -> [CircleConfigKey: String] {
        var values: [CircleConfigKey: String] = [
            .httpPort: "0",
            .authPepperFile: folder.appendingPathComponent("pepper.key").path,
            .activityKeyFile: folder.appendingPathComponent("activity.key").path,
            .authRegistration: "open",
            .logLevel: "error",
            .vaultPath: vaultPath,
            .limitsRates: TestServers.lenientRateLimits,
        ]
        values.merge(extra) { _, new in new }
        switch engine {
        case .sqlite:
            values[.sqlitePath] = folder.appendingPathComponent("circle.sqlite").path
        case .postgres:
            let postgres = try await TestServers.freshPostgresDatabase(suite: "messaging")
            let redis = try TestServers.redisSettings(suite: "messaging")
            values[.postgresURL] = "postgres://\(postgres.username)@\(postgres.host):\(postgres.port)/\(postgres.database)"
            values[.redisURL] = "redis://\(redis.host):\(redis.port)"
            values[.redisPrefix] = redis.prefix
            values[.authPepper] = Data(SecureRandom.bytes(32)).base64EncodedString()
            values[.activityKeys] = "k1:" + Data(SecureRandom.bytes(32)).base64EncodedString()
            values[.authPepperFile] = nil
        }
        return values
    }

    /// Runs `body` against a live server; `store` reaches the same database directly.
    package func run(_ body: @Sendable (APIClient, any DatabaseStore) async throws -> Void) async throws {
        try await run { api, store, _ in try await body(api, store) }
    }

    /// The same, also handing over the server's own store (the one its services share).
    package func run(_ body: @Sendable (APIClient, any DatabaseStore, any DatabaseStore) async throws -> Void) async throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let values = try await values()
        let server = try await buildEmbeddedServer(reader: ConfigSources.reader(values: values), keepingServices: keep)
        let database: DatabaseSettings = switch engine {
        case .sqlite: .sqlite(path: values[.sqlitePath]!)
        case .postgres: .postgres(try PostgresSettings.parse(values[.postgresURL]!, poolSize: 2))
        }
        try await server.application.test(.live) { client in
            try await StoreFactory.withMigratedStore(database, logger: TestServers.quietLogger) { store in
                try await body(APIClient(baseURL: "http://127.0.0.1:\(client.port!)"), store, server.store)
            }
        }
    }
}

/// A member driving the API as a client would, with real keys.
package struct Member: Sendable {
    package let account: TestAccount
    package let token: String

    package init(account: TestAccount, token: String) {
        self.account = account
        self.token = token
    }
    package let deviceId = SecureRandom.bytes(16)

    package var id: String { account.userId }
    package var identityPublic: [UInt8] { Array(account.identity.publicKey.rawRepresentation) }
    package var fingerprint: [UInt8] { IdentityFingerprint.of(identityPublic) }

    package static func register(_ name: String, on api: APIClient) async throws -> Member {
        let account = TestAccount(username: name)
        return Member(account: account, token: try await api.register(account, invite: nil))
    }

    package func sign(_ op: MembershipOp) throws -> SignedOp { try op.sign(with: account.identity) }

    /// The next op on `chain`, made by this member.
    package func op(_ chain: MembershipChain, _ action: MembershipOp.Action, target: Member? = nil, role: MembershipOp.Role = .none,
            settings: ConversationSettings? = nil) throws -> SignedOp {
        var op = chain.nextOp(actor: id, action: action, createdAt: UInt64(Timestamp.now().millis))
        if let target {
            op.target = target.id
            if action != .leave { op.targetFingerprint = target.fingerprint }
        }
        op.role = role
        op.settings = settings
        return try sign(op)
    }

    /// Creates a conversation with `others` (members, or admins in a direct one); returns its id and chain.
    package func create(_ kind: ConversationSettings.Kind = .group, with others: [Member], settings: ConversationSettings? = nil, on api: APIClient) async throws -> (String, MembershipChain) {
        let genesis = try sign(.genesis(creator: id, creatorIdentity: identityPublic, settings: settings ?? .init(kind: kind), createdAt: UInt64(Timestamp.now().millis)))
        var chain = try MembershipChain(genesis: genesis, creatorIdentity: identityPublic)
        var ops: [SignedOp] = []
        for other in others {
            let op = try self.op(chain, .add, target: other, role: kind == .direct ? .admin : .member)
            try chain.append(op, actorIdentity: identityPublic)
            ops.append(op)
        }
        let reply = try await api.call("POST", "/api/v1/conversations", json: Wire.create(genesis: genesis, ops: ops), token: token)
        guard reply.status == 201, let id = TestJSON.string(reply.body, path: ["conversationId"]) else {
            throw TestSupportError("create failed: \(reply.status) \(reply.body)")
        }
        return (id, chain)
    }

    /// Seals `text` as message `index` of `sender` in the conversation at `chain`'s epoch.
    package func seal(_ text: String, chain: MembershipChain, sender: inout SenderChain, kind: MessageHeader.Kind = .message, refersTo: [UInt8] = [],
              expiresAt: UInt64 = 0, messageId: [UInt8] = SecureRandom.bytes(16), sentAt: UInt64? = nil) throws -> MessageSeal.Sealed {
        guard let step = sender.next() else { throw TestSupportError("chain used up") }
        let header = MessageHeader(convId: chain.convId, epoch: chain.epoch, senderUserId: id, deviceId: deviceId, chainIndex: step.index,
                                   messageId: messageId, sentAt: sentAt ?? UInt64(Timestamp.now().millis), expiresAt: expiresAt, kind: kind, refersTo: refersTo)
        return try MessageSeal.seal(header: header, padded: MessagePadding.pad(contentType: 1, content: Array(text.utf8)), key: step.key, nonce: step.nonce, commitment: step.commitment, identity: account.identity)
    }

    /// Envelopes of `chain` (at its start) to every member of `membership`.
    package func envelopes(for sender: SenderChain, membership: MembershipChain, members: [Member], generation: UInt32 = 0) throws -> String {
        let list = try members.filter { membership.isMember($0.id) }.map { recipient in
            let address = EnvelopeAddress(convId: membership.convId, epoch: membership.epoch, sender: id, deviceId: deviceId, generation: generation, recipient: recipient.id)
            return try Envelope.seal(chainKey: sender.chainKey, startIndex: sender.index, to: Array(recipient.account.agreement.publicKey.rawRepresentation),
                                     address: address, signer: account.identity)
        }
        return Wire.envelopes(list)
    }
}

/// JSON bodies of the messaging API.
package enum Wire {
    package static func b64(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }

    package static func op(_ op: SignedOp) -> [String: String] { ["op": b64(op.bytes), "signature": b64(op.signature)] }

    package static func create(genesis: SignedOp, ops: [SignedOp]) -> String {
        json(["genesis": op(genesis), "ops": ops.map(op)])
    }

    package static func append(_ signed: SignedOp) -> String { json(op(signed)) }

    package static func message(_ sealed: MessageSeal.Sealed) -> String {
        json(["header": b64(sealed.header), "ciphertext": b64(sealed.ciphertext), "signature": b64(sealed.signature)])
    }

    package static func envelopes(_ list: [Envelope]) -> String {
        json(["envelopes": list.map { envelope -> [String: Any] in
            ["epoch": b64(envelope.address.epoch), "deviceId": b64(envelope.address.deviceId), "generation": envelope.address.generation,
             "recipient": envelope.address.recipient, "enc": b64(envelope.enc), "ciphertext": b64(envelope.ciphertext), "signature": b64(envelope.signature)]
        }])
    }

    package static func json(_ object: Any) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Decodes a base64url field of a JSON object.
    package static func bytes(_ object: [String: Any], _ key: String) throws -> [UInt8] {
        guard let text = object[key] as? String, let data = Base64URL.decode(text) else { throw TestSupportError("no \(key) in \(object)") }
        return Array(data)
    }
}

extension APIClient {
    /// The caller's events of one type since `since`, from the sync API.
    package func events(_ token: String, type: String, since: Int = 0) async throws -> [[String: Any]] {
        let reply = try await call("GET", "/api/v1/sync?since=\(since)", token: token)
        guard reply.status == 200, let events = TestJSON.value(reply.body, path: ["events"]) as? [[String: Any]] else {
            throw TestSupportError("sync failed: \(reply.status) \(reply.body)")
        }
        return events.filter { $0["type"] as? String == type }.compactMap { $0["data"] as? [String: Any] }
    }
}
