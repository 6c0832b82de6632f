import CircleProtocol
import Crypto

/// A symmetric sender chain (PROTOCOL 6), one per (user, device, conversation, epoch):
/// `mk_i = HMAC(ck_i, 0x01)`, `ck_{i+1} = HMAC(ck_i, 0x02)`,
/// `key (32) || nonce (12) = HKDF(mk_i, "circle/v1/msg", 44)`, and the key commitment
/// `HKDF(mk_i, "circle/v1/msg-commit", 32)` every ciphertext carries (MessageSeal).
///
/// The sender keeps only the next chain key, and must persist it before ciphertext i leaves the
/// device; receivers keep the chain's start and derive message keys on demand.
public struct SenderChain: Sendable, Equatable {
    /// A chain carries at most this many messages; then the sender starts a new one.
    public static let maximumMessages: UInt32 = 1000

    public private(set) var chainKey: [UInt8]
    public private(set) var index: UInt32

    public init(chainKey: [UInt8], index: UInt32 = 0) {
        precondition(chainKey.count == 32)
        self.chainKey = chainKey
        self.index = index
    }

    /// A new chain with a fresh random key.
    public static func fresh() -> SenderChain {
        var generator = SystemRandomNumberGenerator()
        return SenderChain(chainKey: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The message key material at the current index, then advances; nil when the chain is used up.
    public mutating func next() -> (index: UInt32, key: [UInt8], nonce: [UInt8], commitment: [UInt8])? {
        guard index < Self.maximumMessages else { return nil }
        let (key, nonce, commitment) = Self.messageKey(Self.step(chainKey, 0x01))
        let current = index
        chainKey = Self.step(chainKey, 0x02)
        index += 1
        return (current, key, nonce, commitment)
    }

    /// Derives the key of message `target` from the chain's key at `index` (receivers).
    public func key(at target: UInt32) throws -> (key: [UInt8], nonce: [UInt8], commitment: [UInt8]) {
        guard target >= index, target < Self.maximumMessages else { throw ProtocolError.malformed("message index \(target) outside the chain") }
        var ck = chainKey
        for _ in index..<target { ck = Self.step(ck, 0x02) }
        return Self.messageKey(Self.step(ck, 0x01))
    }

    /// The same chain moved forward to `target` (receivers keep such a cursor so they do not
    /// derive every key from the chain's start).
    public func advanced(to target: UInt32) throws -> SenderChain {
        guard target >= index, target <= Self.maximumMessages else { throw ProtocolError.malformed("cannot move a chain back or past its end") }
        var ck = chainKey
        for _ in index..<target { ck = Self.step(ck, 0x02) }
        return SenderChain(chainKey: ck, index: target)
    }

    static func step(_ ck: [UInt8], _ byte: UInt8) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: [byte], using: SymmetricKey(data: ck)))
    }

    static func messageKey(_ mk: [UInt8]) -> ([UInt8], [UInt8], [UInt8]) {
        let material = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: mk), info: Array("circle/v1/msg".utf8), outputByteCount: 44)
            .withUnsafeBytes { Array($0) }
        let commitment = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: mk), info: Array("circle/v1/msg-commit".utf8), outputByteCount: 32)
            .withUnsafeBytes { Array($0) }
        return (Array(material[0..<32]), Array(material[32..<44]), commitment)
    }
}

/// Indices already accepted on one chain; a replay is refused.
public struct ReplayWindow: Sendable, Equatable {
    private var seen = [UInt64](repeating: 0, count: Int(SenderChain.maximumMessages + 63) / 64)

    public init() {}

    /// A window restored from its stored bits.
    public init(bits: [UInt64]) {
        let count = Int(SenderChain.maximumMessages + 63) / 64
        seen = bits.count == count ? bits : [UInt64](repeating: 0, count: count)
    }

    public var bits: [UInt64] { seen }

    public func contains(_ index: UInt32) -> Bool {
        guard index < SenderChain.maximumMessages else { return false }
        return seen[Int(index / 64)] & (1 << UInt64(index % 64)) != 0
    }

    /// Records `index`; false if it was already there (a replay) or out of range.
    public mutating func insert(_ index: UInt32) -> Bool {
        guard index < SenderChain.maximumMessages, !contains(index) else { return false }
        seen[Int(index / 64)] |= 1 << UInt64(index % 64)
        return true
    }
}
