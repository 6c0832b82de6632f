import CircleConfig
import Crypto

/// Seals and opens an entry's IP address and user agent with AES-256-GCM under the server's
/// activity keys (`activity.keys`): the first key seals, any key opens what it sealed (its id is
/// stored with the entry). The associated data binds a sealed value to its chain, entry and
/// field, so one cannot be moved to another entry.
public struct ActivitySealer: Sendable {
    let keys: [String: SymmetricKey]
    let current: (id: String, key: SymmetricKey)

    public init(_ settings: ActivitySettings) {
        var keys: [String: SymmetricKey] = [:]
        for key in settings.keys { keys[key.id] = SymmetricKey(data: key.bytes) }
        self.keys = keys
        self.current = (settings.keys[0].id, SymmetricKey(data: settings.keys[0].bytes))
    }

    public var currentKeyId: String { current.id }

    public enum Field: String, Sendable {
        case ip, userAgent = "ua"
    }

    static func aad(_ field: Field, chain: String, seq: Int64) -> [UInt8] {
        Array("circle/v1/activity/\(field.rawValue)".utf8) + [0] + Array(chain.utf8) + [0] + Array(String(seq).utf8)
    }

    /// `nonce || ciphertext || tag` of `value` for this entry's field.
    public func seal(_ value: String, _ field: Field, chain: String, seq: Int64) throws -> [UInt8] {
        let box = try AES.GCM.seal(Array(value.utf8), using: current.key, authenticating: Self.aad(field, chain: chain, seq: seq))
        return Array(box.combined!)
    }

    /// The value, or nil when the key is unknown (rotated away) or the bytes do not open.
    public func open(_ sealed: [UInt8], _ field: Field, keyId: String, chain: String, seq: Int64) -> String? {
        guard let key = keys[keyId], let box = try? AES.GCM.SealedBox(combined: sealed),
              let plain = try? AES.GCM.open(box, using: key, authenticating: Self.aad(field, chain: chain, seq: seq)) else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }
}
