import CircleCore
import CircleProtocol
import Crypto
import CryptoExtras
import Foundation

/// What the vault knows of a file only after decryption: its name, type and true size
/// (PROTOCOL 9.2), padded to a multiple of 256 bytes and sealed under the file key, bound to the
/// file id so the server cannot show one file's name on another.
public struct VaultMetadata: Sendable, Equatable, Codable {
    public var name: String
    public var type: String
    public var size: UInt64

    public static let maximumName = 1024
    public static let maximumType = 255
    static let bucket = 256
    static let label = Array("circle/v1/vault/meta".utf8)

    public init(name: String, type: String, size: UInt64) {
        self.name = name
        self.type = type
        self.size = size
    }

    func encoded() throws -> [UInt8] {
        let nameBytes = Array(name.utf8), typeBytes = Array(type.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= Self.maximumName else { throw ProtocolError.malformed("a file name is 1 to \(Self.maximumName) bytes") }
        guard typeBytes.count <= Self.maximumType else { throw ProtocolError.malformed("a media type is at most \(Self.maximumType) bytes") }
        var writer = ByteWriter()
        writer.u8(1)
        writer.field(nameBytes)
        writer.field(typeBytes)
        writer.u64(size)
        let padded = (writer.bytes.count + Self.bucket - 1) / Self.bucket * Self.bucket
        return writer.bytes + [UInt8](repeating: 0, count: padded - writer.bytes.count)
    }

    static func decode(_ bytes: [UInt8]) throws -> VaultMetadata {
        guard bytes.count % bucket == 0 else { throw ProtocolError.malformed("metadata is not padded") }
        var reader = ByteReader(bytes)
        guard try reader.u8() == 1 else { throw ProtocolError.malformed("unknown metadata version") }
        let name = try reader.field(maxLength: maximumName), type = try reader.field(maxLength: maximumType)
        let size = try reader.u64()
        let used = 1 + 2 + name.count + 2 + type.count + 8
        guard bytes[used...].allSatisfy({ $0 == 0 }), used + bucket > bytes.count else { throw ProtocolError.malformed("non-zero metadata padding") }
        guard let nameText = String(validating: name, as: UTF8.self), let typeText = String(validating: type, as: UTF8.self), !nameText.isEmpty else {
            throw ProtocolError.malformed("metadata is not UTF-8")
        }
        return VaultMetadata(name: nameText, type: typeText, size: size)
    }

    static func key(_ fileKey: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: fileKey), info: label, outputByteCount: 32)
    }

    /// `AES-GCM(HKDF(fileKey, "circle/v1/vault/meta"), padded, aad = fileId)`.
    public func seal(fileKey: [UInt8], fileId: [UInt8], nonce: [UInt8]? = nil) throws -> [UInt8] {
        let box = try AES.GCM.seal(try encoded(), using: Self.key(fileKey), nonce: try nonce.map(AES.GCM.Nonce.init(data:)) ?? AES.GCM.Nonce(),
                                   authenticating: fileId)
        return Array(box.combined!)
    }

    public static func open(_ sealed: [UInt8], fileKey: [UInt8], fileId: [UInt8]) throws -> VaultMetadata {
        let plain: [UInt8]
        do {
            plain = Array(try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key(fileKey), authenticating: fileId))
        } catch {
            throw ProtocolError.decryptionFailed
        }
        return try decode(plain)
    }
}

/// The keys around a vault file (PROTOCOL 9.3–9.4): the owner's wrap under the vault master key,
/// and a share link's wrap under a key only the link (and its password) can rebuild.
public enum VaultKeys {
    public static let fileIdSize = VaultFormat.fileIdSize
    public static let linkIdSize = VaultFormat.linkIdSize
    public static let linkKeySize = VaultFormat.linkKeySize
    public static let linkSaltSize = VaultFormat.linkSaltSize
    public static let linkIterations = VaultFormat.linkIterations
    static let wrapLabel = Array("circle/v1/vault/wrap".utf8)
    static let linkLabel = Array("circle/v1/vault/link".utf8)
    static let linkUnwrapLabel = Array("circle/v1/vault/link-unwrap".utf8)
    static let linkAccessLabel = Array("circle/v1/vault/link-access".utf8)

    static func seal(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8], nonce: [UInt8]?) throws -> [UInt8] {
        let box = try AES.GCM.seal(plaintext, using: key, nonce: try nonce.map(AES.GCM.Nonce.init(data:)) ?? AES.GCM.Nonce(), authenticating: aad)
        return Array(box.combined!)
    }

    static func open(_ sealed: [UInt8], key: SymmetricKey, aad: [UInt8]) throws -> [UInt8] {
        do {
            return Array(try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key, authenticating: aad))
        } catch {
            throw ProtocolError.decryptionFailed
        }
    }

    static func wrapKey(_ vaultMasterKey: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: vaultMasterKey), info: wrapLabel, outputByteCount: 32)
    }

    /// `AES-GCM(HKDF(vmk, "circle/v1/vault/wrap"), fileKey, aad = owner || fileId)`.
    public static func wrap(fileKey: [UInt8], owner: String, fileId: [UInt8], vaultMasterKey: [UInt8], nonce: [UInt8]? = nil) throws -> [UInt8] {
        try seal(fileKey, key: wrapKey(vaultMasterKey), aad: Array(owner.utf8) + fileId, nonce: nonce)
    }

    public static func unwrap(_ wrapped: [UInt8], owner: String, fileId: [UInt8], vaultMasterKey: [UInt8]) throws -> [UInt8] {
        let key = try open(wrapped, key: wrapKey(vaultMasterKey), aad: Array(owner.utf8) + fileId)
        guard key.count == 32 else { throw ProtocolError.malformed("a file key is 32 bytes") }
        return key
    }

    /// The secrets a link's holder rebuilds: the key that unwraps the file key, and the access
    /// value the server checks (it keeps only SHA-256 of it). With a password, both also depend
    /// on `PBKDF2-SHA256(NFC(password), linkSalt, 600,000)`, so neither the link alone nor the
    /// server's data allows guessing it offline.
    public struct LinkSecrets: Sendable {
        public let unwrapKey: [UInt8]
        public let access: [UInt8]
        public var verifier: [UInt8] { Array(SHA256.hash(data: access)) }
    }

    public static func linkSecrets(linkKey: [UInt8], password: String?, salt: [UInt8]?, iterations: Int = linkIterations) throws -> LinkSecrets {
        guard linkKey.count == linkKeySize else { throw ProtocolError.malformed("a link key is 32 bytes") }
        var material = linkKey
        if let password {
            guard let salt, salt.count == linkSaltSize else { throw ProtocolError.malformed("a link password needs a 16-byte salt") }
            guard iterations >= linkIterations, iterations <= LoginKeys.maximumIterations else {
                throw ProtocolError.refusedKDF("a link password needs \(linkIterations) to \(LoginKeys.maximumIterations) PBKDF2 iterations")
            }
            let normalized = Array(password.precomposedStringWithCanonicalMapping.utf8)
            let stretched = try KDF.Insecure.PBKDF2.deriveKey(from: normalized, salt: salt, using: .sha256, outputByteCount: 32, unsafeUncheckedRounds: iterations)
            material += stretched.withUnsafeBytes { Array($0) }
        }
        func derive(_ label: [UInt8]) -> [UInt8] {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: material), info: label, outputByteCount: 32).withUnsafeBytes { Array($0) }
        }
        return LinkSecrets(unwrapKey: derive(linkUnwrapLabel), access: derive(linkAccessLabel))
    }

    /// `AES-GCM(unwrapKey, fileKey, aad = "circle/v1/vault/link" || linkId)`.
    public static func wrapForLink(fileKey: [UInt8], linkId: [UInt8], secrets: LinkSecrets, nonce: [UInt8]? = nil) throws -> [UInt8] {
        try seal(fileKey, key: SymmetricKey(data: secrets.unwrapKey), aad: linkLabel + linkId, nonce: nonce)
    }

    public static func unwrapFromLink(_ wrapped: [UInt8], linkId: [UInt8], secrets: LinkSecrets) throws -> [UInt8] {
        let key = try open(wrapped, key: SymmetricKey(data: secrets.unwrapKey), aad: linkLabel + linkId)
        guard key.count == 32 else { throw ProtocolError.malformed("a file key is 32 bytes") }
        return key
    }
}
