import CircleCore
import CircleCrypto
import CircleProtocol
import Crypto
import CryptoExtras
import Foundation

/// The client side of login (PROTOCOL 2, docs/API.md): what a password becomes before anything
/// leaves the device.
public enum LoginKeys {
    /// The only KDF clients accept, and its floor. A server offering anything else or less is
    /// refused before a byte is sent.
    public static let kdfName = "PBKDF2-SHA256"
    public static let minimumIterations = 600_000
    public static let maximumIterations = 10_000_000

    /// The KDF parameters a server offered at prelogin.
    public struct KDFParameters: Equatable, Sendable {
        public let name: String
        public let iterations: Int
        public init(name: String, iterations: Int) {
            self.name = name
            self.iterations = iterations
        }
    }

    /// The two keys derived from the password: one proves it to the server, one opens the bundle.
    public struct Derived: Sendable {
        public let authKey: [UInt8]
        public let kek: [UInt8]
    }

    /// Refuses weaker or unknown KDFs, and absurd iteration counts (a server could otherwise make
    /// the client spin).
    public static func check(_ kdf: KDFParameters) throws {
        guard kdf.name == kdfName else { throw ProtocolError.refusedKDF("the server offered \(kdf.name); only \(kdfName) is accepted") }
        guard kdf.iterations >= minimumIterations else {
            throw ProtocolError.refusedKDF("the server offered \(kdf.iterations) iterations; at least \(minimumIterations) are required")
        }
        guard kdf.iterations <= maximumIterations else { throw ProtocolError.refusedKDF("\(kdf.iterations) iterations is more than \(maximumIterations)") }
    }

    /// `SHA-256("circle/v1/origin-salt" || u16(len(origin)) || origin || serverId || username ||
    /// serverSalt)`: bound to the origin the client connected to, so keys derived for one server
    /// are useless at another, whatever prelogin answer that one replays. Without an origin (an
    /// account made before the binding): `SHA-256("circle/v1/salt" || serverId || username ||
    /// serverSalt)`.
    public static func pbkdf2Salt(origin: String?, serverId: String, username: String, serverSalt: [UInt8]) -> [UInt8] {
        guard let origin else {
            return Array(SHA256.hash(data: Array("circle/v1/salt".utf8) + Array(serverId.utf8) + Array(username.utf8) + serverSalt))
        }
        let bytes = Array(origin.utf8)
        return Array(SHA256.hash(data: Array("circle/v1/origin-salt".utf8) + [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xff)] + bytes
            + Array(serverId.utf8) + Array(username.utf8) + serverSalt))
    }

    /// The web origin of a server address, as a browser serializes it: scheme, host (IPv6 in
    /// brackets) and a port other than the scheme's default, lowercase, nothing after.
    public static func origin(of server: String) throws -> String {
        guard let components = URLComponents(string: server), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host?.lowercased(), !host.isEmpty else {
            throw ProtocolError.malformed("the server address \(server) is not an http or https URL")
        }
        let shownHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let defaultPort = scheme == "http" ? 80 : 443
        let port = components.port.flatMap { $0 == defaultPort ? nil : ":\($0)" } ?? ""
        return "\(scheme)://\(shownHost)\(port)"
    }

    /// PBKDF2 and then HKDF into authKey and kek. Slow on purpose (hundreds of milliseconds).
    /// `origin` is the one the client connected to (nil only for an account made before the
    /// binding, PROTOCOL 2).
    public static func derive(password: String, origin: String?, serverId: String, username: String, serverSalt: [UInt8], kdf: KDFParameters) throws -> Derived {
        try check(kdf)
        guard serverSalt.count == 32 else { throw ProtocolError.malformed("the server salt must be 32 bytes") }
        let salt = pbkdf2Salt(origin: origin, serverId: serverId, username: username, serverSalt: serverSalt)
        let master = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.precomposedStringWithCanonicalMapping.utf8), salt: salt, using: .sha256,
            outputByteCount: 32, rounds: kdf.iterations
        )
        let parameters = Array(kdfName.utf8) + bigEndian(UInt32(kdf.iterations))
        return Derived(
            authKey: hkdf(master, info: Array("circle/v1/auth".utf8) + parameters),
            kek: hkdf(master, info: Array("circle/v1/kek".utf8) + parameters)
        )
    }

    static func hkdf(_ key: SymmetricKey, info: [UInt8]) -> [UInt8] {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: info, outputByteCount: 32).withUnsafeBytes { Array($0) }
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }
}

/// An account's private keys: identity (Ed25519), agreement (X25519) and the vault master key.
public struct KeyBundle: Sendable {
    public static let version: UInt8 = 1
    public let identity: Curve25519.Signing.PrivateKey
    public let agreement: Curve25519.KeyAgreement.PrivateKey
    public let vaultMasterKey: [UInt8]

    public init(identity: Curve25519.Signing.PrivateKey = .init(), agreement: Curve25519.KeyAgreement.PrivateKey = .init(), vaultMasterKey: [UInt8] = SecureRandom.bytes(32)) {
        self.identity = identity
        self.agreement = agreement
        self.vaultMasterKey = vaultMasterKey
    }

    /// `version (1) || identity seed (32) || X25519 private (32) || vmk (32)`.
    var plaintext: [UInt8] {
        [Self.version] + Array(identity.rawRepresentation) + Array(agreement.rawRepresentation) + vaultMasterKey
    }

    /// The kx-cert: the identity key's signature over `"circle/v1/kx-cert" || userId || x25519Pub`.
    public func kxCert(userId: String) throws -> [UInt8] {
        Array(try identity.signature(for: CircleLabels.kxCertMessage(userId: userId, x25519Public: Array(agreement.publicKey.rawRepresentation))))
    }

    /// `AES-256-GCM(key, bundle, aad = label || userId || version)` as `nonce (12) || ciphertext || tag (16)`.
    public func seal(with key: [UInt8], userId: String, label: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(plaintext, using: SymmetricKey(data: key), authenticating: Self.aad(label: label, userId: userId))
        return Array(box.combined!)
    }

    /// Opens a sealed bundle and checks that its private keys match the published public keys.
    public static func open(_ sealed: [UInt8], with key: [UInt8], userId: String, label: String, identityPublic: [UInt8], x25519Public: [UInt8]) throws -> KeyBundle {
        let plaintext: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            plaintext = Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: aad(label: label, userId: userId)))
        } catch {
            throw ProtocolError.decryptionFailed
        }
        guard plaintext.count == 97, plaintext[0] == version else { throw ProtocolError.malformed("unknown bundle version") }
        let bundle = KeyBundle(
            identity: try Curve25519.Signing.PrivateKey(rawRepresentation: plaintext[1..<33]),
            agreement: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: plaintext[33..<65]),
            vaultMasterKey: Array(plaintext[65..<97])
        )
        guard Array(bundle.identity.publicKey.rawRepresentation) == identityPublic,
              Array(bundle.agreement.publicKey.rawRepresentation) == x25519Public else {
            throw ProtocolError.weakKey("the bundle's private keys do not match the account's public keys")
        }
        return bundle
    }

    static func aad(label: String, userId: String) -> [UInt8] {
        Array(label.utf8) + Array(userId.utf8) + [version]
    }

    public static let bundleLabel = "circle/v1/bundle"
    public static let recoveryLabel = "circle/v1/recovery-bundle"
}

/// The recovery key: 128 random bits shown once, as 8 groups of 4 hex digits.
public struct RecoveryKey: Sendable, Equatable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8] = SecureRandom.bytes(16)) { self.bytes = bytes }

    public init?(text: String) {
        guard let bytes = Hex.decode(String(text.filter { $0.isHexDigit })), bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    public var text: String {
        let hex = Array(Hex.encode(bytes))
        return stride(from: 0, to: 32, by: 4).map { String(hex[$0..<$0 + 4]) }.joined(separator: "-")
    }

    /// Proves the recovery key to the server.
    public var authKey: [UInt8] { LoginKeys.hkdf(SymmetricKey(data: bytes), info: Array("circle/v1/recovery-auth".utf8)) }
    /// Opens the recovery copy of the bundle.
    public var kek: [UInt8] { LoginKeys.hkdf(SymmetricKey(data: bytes), info: Array("circle/v1/recovery-kek".utf8)) }
}
