import CircleCore
import Crypto
import Foundation

/// Explicit checks on Curve25519 inputs (PROTOCOL 3): BoringSSL and WebCrypto disagree on
/// small-order and non-canonical encodings, so Circle rejects them everywhere, before any use.
public enum KeyChecks {
    /// 2^255 - 19, little-endian.
    static let p: [UInt8] = [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
    /// p - 1, little-endian.
    static let pMinusOne: [UInt8] = [0xec] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
    /// The order of the Ed25519 base point, little-endian.
    static let l: [UInt8] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]
    static let zero = [UInt8](repeating: 0, count: 32)
    static let one: [UInt8] = [1] + [UInt8](repeating: 0, count: 31)

    /// y-coordinates of the Ed25519 points of order 1, 2, 4 and 8 (sign bit cleared).
    static let smallOrderEdwardsY: [[UInt8]] = [
        zero, one, pMinusOne,
        hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    ]

    /// u-coordinates of the X25519 points of small order.
    static let smallOrderMontgomeryU: [[UInt8]] = [
        zero, one, pMinusOne,
        hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ]

    /// Whether `a < b` for little-endian numbers of equal length.
    static func lessThan(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        for index in stride(from: a.count - 1, through: 0, by: -1) where a[index] != b[index] {
            return a[index] < b[index]
        }
        return false
    }

    static func clearingTopBit(_ bytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        copy[31] &= 0x7f
        return copy
    }

    /// An Ed25519 point encoding is canonical when y < p, and x = 0 is not marked negative.
    public static func isCanonicalEdwardsPoint(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 32 else { return false }
        let y = clearingTopBit(bytes)
        guard lessThan(y, p) else { return false }
        let signBit = bytes[31] & 0x80 != 0
        if signBit, y == one || y == pMinusOne { return false }
        return true
    }

    /// Whether an Ed25519 point encoding is one of the points of order 1, 2, 4 or 8.
    public static func isSmallOrderEdwardsPoint(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 32 else { return true }
        return smallOrderEdwardsY.contains(clearingTopBit(bytes))
    }

    /// An Ed25519 public key Circle accepts: 32 bytes, canonical, not of small order.
    public static func ed25519PublicKey(_ bytes: [UInt8]) throws -> Curve25519.Signing.PublicKey {
        guard bytes.count == 32 else { throw KeyCheckError.wrongLength(expected: 32, got: bytes.count) }
        guard isCanonicalEdwardsPoint(bytes) else { throw KeyCheckError.nonCanonical }
        guard !isSmallOrderEdwardsPoint(bytes) else { throw KeyCheckError.smallOrder }
        do {
            return try Curve25519.Signing.PublicKey(rawRepresentation: bytes)
        } catch {
            throw KeyCheckError.invalidPoint
        }
    }

    /// An identity key Circle registers or pins: as `ed25519PublicKey`, and in the prime-order
    /// subgroup (a mixed-order key passes the small-order check but not this one).
    public static func identityKey(_ bytes: [UInt8]) throws -> Curve25519.Signing.PublicKey {
        let key = try ed25519PublicKey(bytes)
        guard Edwards25519.isInPrimeOrderSubgroup(bytes) else { throw KeyCheckError.mixedOrder }
        return key
    }

    /// Strict Ed25519 verification: the key and R canonical and not of small order, S < L,
    /// and then the signature itself.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == 64, let key = try? ed25519PublicKey(publicKey) else { return false }
        let r = Array(signature[0..<32])
        let s = Array(signature[32..<64])
        guard isCanonicalEdwardsPoint(r), !isSmallOrderEdwardsPoint(r), lessThan(s, l) else { return false }
        return key.isValidSignature(signature, for: message)
    }

    /// An X25519 public key Circle accepts: 32 bytes, u < p with the top bit clear, not of small order.
    public static func x25519PublicKey(_ bytes: [UInt8]) throws -> Curve25519.KeyAgreement.PublicKey {
        guard bytes.count == 32 else { throw KeyCheckError.wrongLength(expected: 32, got: bytes.count) }
        guard bytes[31] & 0x80 == 0, lessThan(bytes, p) else { throw KeyCheckError.nonCanonical }
        guard !smallOrderMontgomeryU.contains(bytes) else { throw KeyCheckError.smallOrder }
        do {
            return try Curve25519.KeyAgreement.PublicKey(rawRepresentation: bytes)
        } catch {
            throw KeyCheckError.invalidPoint
        }
    }

    static func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }
}

/// Why a key was refused.
public enum KeyCheckError: Error, Equatable, CustomStringConvertible {
    case wrongLength(expected: Int, got: Int)
    case nonCanonical
    case smallOrder
    case invalidPoint
    case mixedOrder

    public var description: String {
        switch self {
        case .wrongLength(let expected, let got): "must be \(expected) bytes (got \(got))"
        case .nonCanonical: "is not a canonical encoding"
        case .smallOrder: "is a point of small order"
        case .invalidPoint: "is not a valid curve point"
        case .mixedOrder: "is not in the prime-order subgroup (it has a small-order component)"
        }
    }
}
