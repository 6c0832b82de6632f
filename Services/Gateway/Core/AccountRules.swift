import CircleCore
import CircleCrypto
import Foundation
import GatewayStore

/// The shape rules of account data, checked before anything is stored.
package enum AccountRules {
    /// PBKDF2-SHA256 with this many iterations; clients refuse anything weaker (PROTOCOL 2).
    package static let kdfName = "PBKDF2-SHA256"
    package static let kdfIterations = 600_000
    package static let saltBytes = 32
    package static let authKeyBytes = 32
    package static let maxBundleBytes = 4096
    package static let maxDisplayName = 64
    package static let maxDeviceLabel = 64

    /// Usernames: 3 to 32 characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or
    /// digit; compared in lowercase.
    package static func normalizeUsername(_ raw: String) throws -> String {
        let name = raw.lowercased()
        guard (3...32).contains(name.count) else {
            throw Problem.invalidField("username", "must be 3 to 32 characters")
        }
        guard name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-" }),
              let first = name.unicodeScalars.first, ("a"..."z").contains(first) || ("0"..."9").contains(first) else {
            throw Problem.invalidField("username", "may use only a-z, 0-9, '.', '_' and '-', and must start with a letter or digit")
        }
        return name
    }

    /// Usernames as looked up (prelogin, login): normalized when well formed, else used as given,
    /// so a malformed name is answered exactly like an unknown one.
    package static func lookupName(_ raw: String) -> String {
        (try? normalizeUsername(raw)) ?? String(raw.lowercased().prefix(64))
    }

    /// Names and labels people read: NFC, trimmed, at most `maxCharacters` characters and four
    /// bytes of UTF-8 per allowed character (a single character can carry thousands of combining
    /// marks), with no control or formatting characters (bidi overrides, zero-width joiners).
    package static func readableText(_ raw: String, field: String, maxCharacters: Int) throws -> String {
        let text = raw.precomposedStringWithCanonicalMapping.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count <= maxCharacters, text.utf8.count <= maxCharacters * 4 else {
            throw Problem.invalidField(field, "must be at most \(maxCharacters) characters (\(maxCharacters * 4) bytes of UTF-8)")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }) else {
            throw Problem.invalidField(field, "must not contain control or formatting characters")
        }
        return text
    }

    package static func displayName(_ raw: String) throws -> String {
        let name = try readableText(raw, field: "displayName", maxCharacters: maxDisplayName)
        guard !name.isEmpty else { throw Problem.invalidField("displayName", "must be 1 to \(maxDisplayName) characters") }
        return name
    }

    /// A web origin as browsers serialize it (PROTOCOL 2): `http` or `https`, `://`, a lowercase
    /// host name, IPv4 address or bracketed IPv6 address, and a port only when it is not the
    /// scheme's default; nothing after it. At most 255 bytes.
    package static func origin(_ raw: String, field: String = "origin") throws -> String {
        guard let parsed = parseOrigin(raw) else {
            throw Problem.invalidField(field, "must be a web origin as a browser writes it (for example https://circle.example.org or http://localhost:8080)")
        }
        return parsed
    }

    /// `raw` when it is a serialized origin (see `origin`), else nil.
    package static func parseOrigin(_ raw: String) -> String? {
        guard raw.utf8.count <= 255, raw == raw.lowercased() else { return nil }
        let scheme: String, defaultPort: String
        if raw.hasPrefix("http://") { (scheme, defaultPort) = ("http://", "80") } else if raw.hasPrefix("https://") { (scheme, defaultPort) = ("https://", "443") } else { return nil }
        var rest = Substring(raw.dropFirst(scheme.count))
        var port: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            let inside = rest[rest.index(after: rest.startIndex)..<close]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") { port = rest.dropFirst() } else if !rest.isEmpty { return nil }
        } else {
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let host = parts[0]
            guard !host.isEmpty, host.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" }),
                  !host.hasPrefix("."), !host.hasSuffix("."), !host.hasPrefix("-") else { return nil }
            if parts.count == 2 { port = parts[1] }
        }
        if let port {
            guard let number = Int(port), (1...65535).contains(number), String(number) == port, String(port) != defaultPort else { return nil }
        }
        return raw
    }

    package static func deviceLabel(_ raw: String?) throws -> String {
        let label = try readableText(raw ?? "", field: "deviceLabel", maxCharacters: maxDeviceLabel)
        return label.isEmpty ? "unnamed device" : label
    }

    /// A user id is a lowercase UUID chosen by the client (it signs it into the kx-cert).
    package static func userId(_ raw: String) throws -> String {
        guard raw.count == 36, let uuid = UUID(uuidString: raw), uuid.uuidString.lowercased() == raw else {
            throw Problem.invalidField("userId", "must be a lowercase UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e")
        }
        return raw
    }

    package static func bytes(_ field: String, _ text: String, count: Int) throws -> [UInt8] {
        guard let data = Base64URL.decode(text) else { throw Problem.invalidField(field, "must be unpadded base64url") }
        guard data.count == count else { throw Problem.invalidField(field, "must be \(count) bytes (got \(data.count))") }
        return Array(data)
    }

    package static func blob(_ field: String, _ text: String, max: Int = maxBundleBytes) throws -> [UInt8] {
        guard let data = Base64URL.decode(text) else { throw Problem.invalidField(field, "must be unpadded base64url") }
        guard (1...max).contains(data.count) else { throw Problem.invalidField(field, "must be 1 to \(max) bytes (got \(data.count))") }
        return Array(data)
    }

    /// The public keys of a registration: an Ed25519 identity key and an X25519 key certified by it.
    package static func publicKeys(userId: String, identityKey: String, x25519Key: String, kxCert: String) throws -> (identity: [UInt8], x25519: [UInt8], cert: [UInt8]) {
        let identity = try bytes("identityKey", identityKey, count: 32)
        let x25519 = try bytes("x25519Key", x25519Key, count: 32)
        let cert = try bytes("kxCert", kxCert, count: 64)
        do {
            _ = try KeyChecks.identityKey(identity)
        } catch let error as KeyCheckError {
            throw Problem.invalidField("identityKey", "\(error)")
        }
        do {
            _ = try KeyChecks.x25519PublicKey(x25519)
        } catch let error as KeyCheckError {
            throw Problem.invalidField("x25519Key", "\(error)")
        }
        guard KeyChecks.verify(signature: cert, message: CircleLabels.kxCertMessage(userId: userId, x25519Public: x25519), publicKey: identity) else {
            throw Problem.invalidField("kxCert", "does not verify: it must be the identity key's signature over \"circle/v1/kx-cert\" || userId || x25519Key")
        }
        return (identity, x25519, cert)
    }
}
