import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Foundation
import Testing

@Suite("Account keys on the client")
struct AccountKeysTests {
    static let kdf = LoginKeys.KDFParameters(name: "PBKDF2-SHA256", iterations: 600_000)
    static let serverSalt = [UInt8](repeating: 7, count: 32)

    @Test("a server offering another KDF or fewer iterations is refused before anything is derived", arguments: [
        LoginKeys.KDFParameters(name: "PBKDF2-SHA256", iterations: 599_999),
        LoginKeys.KDFParameters(name: "PBKDF2-SHA1", iterations: 600_000),
        LoginKeys.KDFParameters(name: "argon2id", iterations: 3),
        LoginKeys.KDFParameters(name: "PBKDF2-SHA256", iterations: 50_000_000),
    ])
    func refusesWeakKDF(_ kdf: LoginKeys.KDFParameters) {
        #expect(throws: ProtocolError.self) {
            try LoginKeys.derive(password: "correct horse", origin: "https://a.example", serverId: "s", username: "ann", serverSalt: Self.serverSalt, kdf: kdf)
        }
    }

    @Test("derivation is deterministic, separates authKey from kek, and depends on every input")
    func derivation() throws {
        let base = try LoginKeys.derive(password: "correct horse", origin: "https://a.example", serverId: "server-a", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        let again = try LoginKeys.derive(password: "correct horse", origin: "https://a.example", serverId: "server-a", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        #expect(base.authKey == again.authKey && base.kek == again.kek)
        #expect(base.authKey != base.kek)
        #expect(base.authKey.count == 32)
        let otherServer = try LoginKeys.derive(password: "correct horse", origin: "https://a.example", serverId: "server-b", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        let otherUser = try LoginKeys.derive(password: "correct horse", origin: "https://a.example", serverId: "server-a", username: "bob", serverSalt: Self.serverSalt, kdf: Self.kdf)
        let otherPassword = try LoginKeys.derive(password: "correct horsf", origin: "https://a.example", serverId: "server-a", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        let otherOrigin = try LoginKeys.derive(password: "correct horse", origin: "https://b.example", serverId: "server-a", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        let unbound = try LoginKeys.derive(password: "correct horse", origin: nil, serverId: "server-a", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        for other in [otherServer, otherUser, otherPassword, otherOrigin, unbound] {
            #expect(other.authKey != base.authKey)
            #expect(other.kek != base.kek)
        }
        // A composed and a decomposed "é" are the same password.
        let composed = try LoginKeys.derive(password: "caf\u{e9}", origin: "https://a.example", serverId: "s", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        let decomposed = try LoginKeys.derive(password: "cafe\u{301}", origin: "https://a.example", serverId: "s", username: "ann", serverSalt: Self.serverSalt, kdf: Self.kdf)
        #expect(composed.authKey == decomposed.authKey)
    }

    @Test("a server address's origin is written as a browser writes it")
    func origins() throws {
        #expect(try LoginKeys.origin(of: "http://127.0.0.1:8080") == "http://127.0.0.1:8080")
        #expect(try LoginKeys.origin(of: "HTTPS://Circle.Example.ORG:443/") == "https://circle.example.org")
        #expect(try LoginKeys.origin(of: "http://localhost:80/api") == "http://localhost")
        #expect(try LoginKeys.origin(of: "http://[::1]:8080") == "http://[::1]:8080")
        #expect(throws: ProtocolError.self) { try LoginKeys.origin(of: "ftp://example.org") }
    }

    @Test("the bundle opens with the right kek, and only for its own user and public keys")
    func bundle() throws {
        let bundle = KeyBundle()
        let kek = SecureRandom.bytes(32)
        let userId = UUID().uuidString.lowercased()
        let identityPublic = Array(bundle.identity.publicKey.rawRepresentation)
        let x25519Public = Array(bundle.agreement.publicKey.rawRepresentation)
        let sealed = try bundle.seal(with: kek, userId: userId, label: KeyBundle.bundleLabel)
        let opened = try KeyBundle.open(sealed, with: kek, userId: userId, label: KeyBundle.bundleLabel, identityPublic: identityPublic, x25519Public: x25519Public)
        #expect(opened.vaultMasterKey == bundle.vaultMasterKey)

        #expect(throws: ProtocolError.decryptionFailed) {
            try KeyBundle.open(sealed, with: SecureRandom.bytes(32), userId: userId, label: KeyBundle.bundleLabel, identityPublic: identityPublic, x25519Public: x25519Public)
        }
        // Another user's associated data: the server swapped bundles between accounts.
        #expect(throws: ProtocolError.decryptionFailed) {
            try KeyBundle.open(sealed, with: kek, userId: UUID().uuidString.lowercased(), label: KeyBundle.bundleLabel, identityPublic: identityPublic, x25519Public: x25519Public)
        }
        // The recovery copy's label does not open the main copy.
        #expect(throws: ProtocolError.decryptionFailed) {
            try KeyBundle.open(sealed, with: kek, userId: userId, label: KeyBundle.recoveryLabel, identityPublic: identityPublic, x25519Public: x25519Public)
        }
        // Private keys that do not match the published public keys.
        let other = KeyBundle()
        #expect(throws: ProtocolError.self) {
            try KeyBundle.open(sealed, with: kek, userId: userId, label: KeyBundle.bundleLabel,
                               identityPublic: Array(other.identity.publicKey.rawRepresentation), x25519Public: x25519Public)
        }
        var flipped = sealed
        flipped[20] ^= 1
        #expect(throws: ProtocolError.decryptionFailed) {
            try KeyBundle.open(flipped, with: kek, userId: userId, label: KeyBundle.bundleLabel, identityPublic: identityPublic, x25519Public: x25519Public)
        }
    }

    @Test("the recovery key round-trips through its text and derives separate keys")
    func recoveryKey() throws {
        let key = RecoveryKey()
        #expect(key.text.count == 39)
        #expect(RecoveryKey(text: key.text) == key)
        #expect(RecoveryKey(text: key.text.uppercased().replacingOccurrences(of: "-", with: " ")) == key)
        #expect(RecoveryKey(text: "1234") == nil)
        #expect(key.authKey != key.kek)
        let bundle = KeyBundle()
        let userId = UUID().uuidString.lowercased()
        let sealed = try bundle.seal(with: key.kek, userId: userId, label: KeyBundle.recoveryLabel)
        let opened = try KeyBundle.open(sealed, with: RecoveryKey(text: key.text)!.kek, userId: userId, label: KeyBundle.recoveryLabel,
                                        identityPublic: Array(bundle.identity.publicKey.rawRepresentation), x25519Public: Array(bundle.agreement.publicKey.rawRepresentation))
        #expect(opened.vaultMasterKey == bundle.vaultMasterKey)
    }
}
