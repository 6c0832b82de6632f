import CircleCore
import Crypto
import Foundation
import GatewayStore

/// The server's side of zero-knowledge login (PROTOCOL 2), all keyed by the pepper, which lives
/// in configuration and never in the database.
///
/// - stored verifier: `HMAC-SHA256(pepper, authKey)`, compared in constant time;
/// - stored bundles: AES-256-GCM under `HKDF(pepper, "circle/v1/server/bundle-wrap")`, bound
///   to the user and the bundle's kind, so rows cannot be swapped between users;
/// - fake salts for unknown usernames: `HMAC(HKDF(pepper, "circle/v1/server/fake-salt"), username)`,
///   stable, so asking twice tells nothing.
package struct AccountCrypto: Sendable {
    private let pepper: SymmetricKey
    private let wrapKey: SymmetricKey
    private let fakeSaltKey: SymmetricKey
    /// Compared against when the username is unknown, so both paths do the same work.
    private let dummyVerifier: [UInt8]

    package init(pepper: [UInt8]) {
        self.pepper = SymmetricKey(data: pepper)
        self.wrapKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: self.pepper, info: Data("circle/v1/server/bundle-wrap".utf8), outputByteCount: 32)
        self.fakeSaltKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: self.pepper, info: Data("circle/v1/server/fake-salt".utf8), outputByteCount: 32)
        self.dummyVerifier = SecureRandom.bytes(32)
    }

    package func verifier(for authKey: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: authKey, using: pepper))
    }

    /// Whether `authKey` matches the stored verifier, or (for an unknown user) runs the same
    /// computation against a dummy and answers false.
    package func matches(authKey: [UInt8], stored: [UInt8]?) -> Bool {
        let computed = verifier(for: authKey)
        let equal = ConstantTime.equal(computed, stored ?? dummyVerifier)
        return equal && stored != nil
    }

    package func fakeSalt(forUsername username: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data(username.utf8), using: fakeSaltKey))
    }

    package enum BundleKind: String { case main, recovery }

    package func wrap(_ bundle: [UInt8], userId: String, kind: BundleKind) throws -> [UInt8] {
        let sealed = try AES.GCM.seal(bundle, using: wrapKey, authenticating: Self.aad(userId: userId, kind: kind))
        return Array(sealed.combined!)
    }

    package func unwrap(_ wrapped: [UInt8], userId: String, kind: BundleKind) throws -> [UInt8] {
        let box = try AES.GCM.SealedBox(combined: wrapped)
        return Array(try AES.GCM.open(box, using: wrapKey, authenticating: Self.aad(userId: userId, kind: kind)))
    }

    private static func aad(userId: String, kind: BundleKind) -> Data {
        Data("circle/v1/server/bundle".utf8) + Data([UInt8(userId.utf8.count)]) + Data(userId.utf8) + Data(kind.rawValue.utf8)
    }
}
