import CircleCore
import CircleCrypto
import CircleProtocol
import Crypto
import Foundation
import Logging

/// A message as a member reads it: checked, decrypted and unpadded.
public struct ChatMessage: Sendable, Equatable {
    public let conversationId: String
    public let seq: Int64
    public let id: String
    public let sender: String
    public let kind: MessageHeader.Kind
    public let contentType: UInt8
    /// The text (for an edit, the new text; for a delete, empty).
    public let text: String
    public let sentAt: UInt64
    public let expiresAt: UInt64
    /// `SHA-256(header)`: how edits and deletes name this message inside their ciphertext.
    public let headerHash: [UInt8]
    /// For an edit or delete: the original's id (from the header) and header hash (from inside
    /// the ciphertext). A client applies it only to a message with both, by the same author.
    public let refersTo: String?
    public let refersToHash: [UInt8]
    /// A message its author deleted: the server kept only its header, and the author's signed
    /// delete naming that header came with it (`text` is empty).
    public var deleted = false
    /// How many messages of the sender's chain came between the one received before this one and
    /// this one without being listed (PROTOCOL 6: a sender numbers its messages without gaps);
    /// counted only where messages do not expire, since expired ones are gone from the server.
    public var missingBefore = 0
    /// The sender chain (its address key) and index it came on, for the gap check.
    var chain: String?
    var chainIndex: UInt32 = 0

    /// Content types inside the padded plaintext (PROTOCOL 6).
    public enum ContentType {
        public static let text: UInt8 = 1
        public static let edit: UInt8 = 2
        public static let delete: UInt8 = 3
    }

    /// Whether this edit or delete may apply to `original`: same conversation and author, named
    /// by both id and header hash.
    public func applies(to original: ChatMessage) -> Bool {
        kind != .message && original.kind == .message && original.conversationId == conversationId && original.sender == sender
            && refersTo == original.id && refersToHash == original.headerHash
    }
}

/// What CircleKit refuses to do on the user's behalf until they decide.
public enum ChatAlarm: Error, CustomStringConvertible, Equatable {
    /// The directory shows another identity key than the one pinned: sending to that contact is
    /// blocked until the user compares safety numbers and acknowledges the change.
    case keyChanged(username: String)
    /// The server showed two histories of a conversation, rolled one back, or withheld an op.
    case fork(String)

    public var description: String {
        switch self {
        case .keyChanged(let name): "the identity key of \(name) changed: compare safety numbers, then run `circle verify \(name) --accept-new-key`"
        case .fork(let why): "FORK ALARM: \(why); do not trust this conversation until members compare safety numbers"
        }
    }
}

/// One device's end-to-end client (ARCHITECTURE 3, PROTOCOL 2 to 7): the account, the directory with
/// pins, conversations with their verified membership chains, sending on this device's own sender
/// chains and receiving on everyone else's. Every change to keys is saved (atomically) before
/// anything that depends on it leaves the device.
public actor ChatClient {
    /// Where the device state lives; nil for an ephemeral device kept in memory only (benchmarks
    /// and scripted users: after a crash such a device is simply gone, it never reuses a key).
    public let statePath: String?
    public internal(set) var state: DeviceState
    var api: CircleAPI
    /// Verified chains held in memory (the state file keeps their ops).
    var chains: [String: MembershipChain] = [:]
    var directory: [String: APITypes.DirectoryEntry] = [:]
    /// Serialises sealing, so concurrent sends never take the same chain index.
    let sealing = AsyncMutex()
    /// Outbox entries being posted right now (not to be resent by a concurrent send).
    var inFlight: Set<Bytes> = []
    /// Messages sent again from the outbox after an attempt whose outcome was unknown.
    public internal(set) var resent = 0
    /// Why the realtime socket last went down (for status displays and diagnostics).
    public internal(set) var lastDisconnect: String?
    /// The identity key made from the state's seed, kept so each signature does not derive the
    /// public key again (a base-point multiplication); remade when the seed changes.
    private var identityCache: (seed: Bytes, key: Curve25519.Signing.PrivateKey)?

    /// This device's identity signing key.
    func identityKey() throws -> Curve25519.Signing.PrivateKey {
        if let cached = identityCache, cached.seed == state.identitySeed { return cached.key }
        let key = try state.identity
        identityCache = (state.identitySeed, key)
        return key
    }

    public init(statePath: String) throws {
        self.statePath = statePath
        let state = try StateFile.load(statePath)
        self.state = state
        self.api = CircleAPI(baseURL: state.server, token: state.token)
    }

    init(statePath: String?, state: DeviceState) throws {
        self.statePath = statePath
        self.state = state
        self.api = CircleAPI(baseURL: state.server, token: state.token)
        if let statePath { try StateFile.save(state, to: statePath) }
    }

    public var userId: String { state.userId }
    public var username: String { state.username }

    func save() throws {
        if let statePath { try StateFile.save(state, to: statePath) }
    }

    // MARK: Account

    /// Registers a new account: keys made here, the password never sent; returns the client and
    /// the recovery key (to show once).
    public static func register(server: String, invite: String?, username: String, displayName: String? = nil, password: String,
                                deviceLabel: String, statePath: String?) async throws -> (ChatClient, RecoveryKey) {
        let api = CircleAPI(baseURL: server)
        let info: APITypes.ServerInfo = try await api.call(.GET, "/api/v1/server")
        let name = username.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let userId = UUID().uuidString.lowercased()
        let serverSalt = SecureRandom.bytes(32)
        let origin = try LoginKeys.origin(of: api.baseURL)
        let derived = try LoginKeys.derive(password: password, origin: origin, serverId: info.serverId, username: name, serverSalt: serverSalt,
                                           kdf: .init(name: LoginKeys.kdfName, iterations: LoginKeys.minimumIterations))
        let bundle = KeyBundle()
        let recovery = RecoveryKey()
        let body = APITypes.Register(
            invite: invite.map(Self.inviteCode), userId: userId, username: name, displayName: displayName ?? username,
            authKey: Base64URL.encode(derived.authKey), salt: Base64URL.encode(serverSalt),
            bundle: Base64URL.encode(try bundle.seal(with: derived.kek, userId: userId, label: KeyBundle.bundleLabel)),
            recoveryBundle: Base64URL.encode(try bundle.seal(with: recovery.kek, userId: userId, label: KeyBundle.recoveryLabel)),
            recoveryAuthKey: Base64URL.encode(recovery.authKey),
            identityKey: Base64URL.encode(bundle.identity.publicKey.rawRepresentation),
            x25519Key: Base64URL.encode(bundle.agreement.publicKey.rawRepresentation),
            kxCert: Base64URL.encode(try bundle.kxCert(userId: userId)), deviceLabel: deviceLabel, origin: origin)
        let session: APITypes.Session = try await api.call(.POST, "/api/v1/auth/register", body: body)
        let state = DeviceState(server: api.baseURL, serverId: info.serverId, userId: userId, username: name, deviceId: Bytes(SecureRandom.bytes(16)),
                                token: session.token, sessionId: session.sessionId, identitySeed: Bytes(Array(bundle.identity.rawRepresentation)),
                                x25519Private: Bytes(Array(bundle.agreement.rawRepresentation)), vaultMasterKey: Bytes(bundle.vaultMasterKey))
        return (try ChatClient(statePath: statePath, state: state), recovery)
    }

    /// Signs in on a new device: refuses a weakened KDF, or an account bound to another origin
    /// than this server address's, before sending anything; derives the authKey bound to this
    /// address, opens the bundle and checks its keys against the directory. An account made
    /// before the binding signs in once as it was made, then is bound (PROTOCOL 2).
    public static func login(server: String, username: String, password: String, deviceLabel: String, statePath: String?) async throws -> ChatClient {
        var api = CircleAPI(baseURL: server)
        let origin = try LoginKeys.origin(of: api.baseURL)
        let name = username.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let prelogin: APITypes.Prelogin = try await api.call(.POST, "/api/v1/auth/prelogin", body: APITypes.Username(username: name))
        let kdf = LoginKeys.KDFParameters(name: prelogin.kdf.name, iterations: prelogin.kdf.iterations)
        try LoginKeys.check(kdf)
        if let bound = prelogin.origin, bound != origin {
            throw ProtocolError.refused("this account signs in at \(bound), not at \(origin): use that address")
        }
        // A server id this state file knows for this address must not change.
        if let statePath, let previous = try? StateFile.load(statePath), previous.server == api.baseURL, previous.serverId != prelogin.serverId {
            throw ProtocolError.refused("the server at \(api.baseURL) now says it is \(prelogin.serverId), not \(previous.serverId)")
        }
        let derived = try LoginKeys.derive(password: password, origin: prelogin.origin, serverId: prelogin.serverId, username: name,
                                           serverSalt: try Base64URL.bytes(prelogin.salt, "salt"), kdf: kdf)
        let session: APITypes.Session = try await api.call(.POST, "/api/v1/auth/login",
                                                           body: APITypes.Login(username: name, authKey: Base64URL.encode(derived.authKey), deviceLabel: deviceLabel))
        api.token = session.token
        let me: APITypes.DirectoryEntry = try await api.call(.GET, "/api/v1/directory/users/\(session.user.userId)")
        let bundle = try KeyBundle.open(try Base64URL.bytes(session.bundle, "bundle"), with: derived.kek, userId: session.user.userId, label: KeyBundle.bundleLabel,
                                        identityPublic: try Base64URL.bytes(me.identityKey, "identityKey"), x25519Public: try Base64URL.bytes(me.x25519Key, "x25519Key"))
        if prelogin.origin == nil {
            // Bound now: the same password derived again with this address's origin.
            let salt = SecureRandom.bytes(32)
            let next = try LoginKeys.derive(password: password, origin: origin, serverId: prelogin.serverId, username: name, serverSalt: salt, kdf: kdf)
            let _: APITypes.LoginBound = try await api.call(.POST, "/api/v1/account/login-origin", body: APITypes.BindLogin(
                currentAuthKey: Base64URL.encode(derived.authKey), authKey: Base64URL.encode(next.authKey), salt: Base64URL.encode(salt),
                bundle: Base64URL.encode(try bundle.seal(with: next.kek, userId: session.user.userId, label: KeyBundle.bundleLabel)), origin: origin))
        }
        var state = DeviceState(server: api.baseURL, serverId: prelogin.serverId, userId: session.user.userId, username: name, deviceId: Bytes(SecureRandom.bytes(16)),
                                token: session.token, sessionId: session.sessionId, identitySeed: Bytes(Array(bundle.identity.rawRepresentation)),
                                x25519Private: Bytes(Array(bundle.agreement.rawRepresentation)), vaultMasterKey: Bytes(bundle.vaultMasterKey))
        if let statePath, let previous = try? StateFile.load(statePath), previous.userId == state.userId, previous.server == state.server {
            state.pins = previous.pins
        }
        let client = try ChatClient(statePath: statePath, state: state)
        // Contacts pinned and verified on other devices come along (the blob is end-to-end encrypted).
        try await client.syncPins()
        return client
    }

    /// Ends the session on the server and forgets it here (keys and pins stay for the next login).
    public func logout() async throws {
        defer {
            state.token = nil
            state.sessionId = nil
            try? save()
        }
        try await api.send(.POST, "/api/v1/auth/logout")
    }

    /// The code of an invite given as a link (`.../#/invite/CODE`) or as the bare code.
    static func inviteCode(_ text: String) -> String {
        String(text.split(separator: "/").last ?? Substring(text)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func requireSession() throws {
        guard state.token != nil else { throw ProtocolError.malformed("not signed in: run `circle login`") }
    }

    // MARK: Directory and pins

    /// A directory entry whose keys pass every check: canonical, not small-order, kx-cert valid.
    func entry(userId: String? = nil, username: String? = nil) async throws -> APITypes.DirectoryEntry {
        if let userId, let cached = directory[userId] { return cached }
        let path = userId.map { "/api/v1/directory/users/\($0)" } ?? "/api/v1/directory/usernames/\(username!.lowercased())"
        let entry: APITypes.DirectoryEntry = try await api.call(.GET, path)
        let identity = try Base64URL.bytes(entry.identityKey, "identityKey")
        let x25519 = try Base64URL.bytes(entry.x25519Key, "x25519Key")
        _ = try KeyChecks.identityKey(identity)
        _ = try KeyChecks.x25519PublicKey(x25519)
        guard KeyChecks.verify(signature: try Base64URL.bytes(entry.kxCert, "kxCert"),
                               message: CircleLabels.kxCertMessage(userId: entry.userId, x25519Public: x25519), publicKey: identity) else {
            throw ProtocolError.badSignature("the kx-cert of \(entry.username)")
        }
        directory[entry.userId] = entry
        return entry
    }

    /// The identity key to trust for a user: the pin, or (first contact) the directory's, pinned now.
    func pinnedIdentity(_ userId: String) async throws -> [UInt8] {
        if userId == state.userId { return Array(try identityKey().publicKey.rawRepresentation) }
        if let pin = state.pins[userId] { return pin.identityKey.bytes }
        let entry = try await entry(userId: userId)
        let key = try Base64URL.bytes(entry.identityKey, "identityKey")
        state.pins[userId] = DeviceState.Pin(username: entry.username, identityKey: Bytes(key), verified: false, pendingChange: nil)
        try save()
        try? await syncPins()
        return key
    }

    /// The identity key to verify `userId`'s messages and envelopes under: the one whose
    /// fingerprint the conversation's chain recorded for them (PROTOCOL 5.1). A first contact is
    /// pinned only when the directory's key has that fingerprint; a directory key (or a pin) with
    /// another one is a key change, never a new pin, and nothing verifies under it.
    func recordedIdentity(_ userId: String, fingerprint recorded: [UInt8]?) async throws -> [UInt8] {
        if userId == state.userId { return Array(try identityKey().publicKey.rawRepresentation) }
        let pinned = state.pins[userId]
        let entry = pinned == nil ? try await entry(userId: userId) : nil
        let key = try pinned?.identityKey.bytes ?? Base64URL.bytes(entry!.identityKey, "identityKey")
        guard let recorded, IdentityFingerprint.of(key) == recorded else {
            throw ChatAlarm.keyChanged(username: pinned?.username ?? entry?.username ?? userId)
        }
        if pinned == nil, let entry {
            state.pins[userId] = DeviceState.Pin(username: entry.username, identityKey: Bytes(key), verified: false, pendingChange: nil)
            try save()
            try? await syncPins()
        }
        return key
    }

    /// The keys to seal to: the directory's, which must equal the pin (a change blocks sending).
    func sealingKeys(_ userId: String) async throws -> (identity: [UInt8], x25519: [UInt8]) {
        let entry = try await entry(userId: userId)
        let identity = try Base64URL.bytes(entry.identityKey, "identityKey")
        let pinned = try await pinnedIdentity(userId)
        guard pinned == identity else {
            state.pins[userId]?.pendingChange = Bytes(identity)
            try save()
            throw ChatAlarm.keyChanged(username: entry.username)
        }
        return (identity, try Base64URL.bytes(entry.x25519Key, "x25519Key"))
    }

    /// The safety number shared with a contact (PROTOCOL 5.2), from the pinned keys.
    public func safetyNumber(with username: String) async throws -> String {
        try requireSession()
        let entry = try await entry(username: username)
        let theirs = try await pinnedIdentity(entry.userId)
        let mine = SafetyNumber.half(serverId: state.serverId, userId: state.userId, identityPublic: Array(try identityKey().publicKey.rawRepresentation))
        return SafetyNumber.combined(mine, SafetyNumber.half(serverId: state.serverId, userId: entry.userId, identityPublic: theirs))
    }

    /// Marks a contact verified after comparing safety numbers; with `acceptNewKey`, first
    /// replaces a changed pin by the key the directory now shows.
    public func verify(_ username: String, acceptNewKey: Bool = false) async throws {
        try requireSession()
        let entry = try await entry(username: username)
        _ = try await pinnedIdentity(entry.userId)
        let current = try Base64URL.bytes(entry.identityKey, "identityKey")
        if state.pins[entry.userId]!.identityKey.bytes != current {
            guard acceptNewKey else { throw ChatAlarm.keyChanged(username: entry.username) }
            state.pins[entry.userId]!.identityKey = Bytes(current)
        }
        state.pins[entry.userId]!.pendingChange = nil
        state.pins[entry.userId]!.verified = true
        try save()
        try await syncPins()
    }

    public func pin(of userId: String) -> DeviceState.Pin? { state.pins[userId] }

    /// The username of a user id (from pins or the directory), for display.
    public func name(of userId: String) async -> String {
        if userId == state.userId { return state.username }
        if let pin = state.pins[userId] { return pin.username }
        return (try? await entry(userId: userId).username) ?? userId
    }
}
