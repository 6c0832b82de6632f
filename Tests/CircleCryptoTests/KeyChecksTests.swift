import CircleCore
import CircleCrypto
import Crypto
import Foundation
import Testing

@Suite("Curve25519 input checks")
struct KeyChecksTests {
    static func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

    static let p = hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")

    @Test("every small-order Ed25519 point is refused, with either sign bit", arguments: [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ])
    func smallOrderEdwards(_ encoding: String) {
        #expect(throws: KeyCheckError.self) { try KeyChecks.ed25519PublicKey(Self.hex(encoding)) }
    }

    @Test("non-canonical Ed25519 encodings (y >= p, or x = 0 marked negative) are refused", arguments: [
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0100000000000000000000000000000000000000000000000000000000000080",
    ])
    func nonCanonicalEdwards(_ encoding: String) {
        #expect(!KeyChecks.isCanonicalEdwardsPoint(Self.hex(encoding)))
        #expect(throws: KeyCheckError.nonCanonical) { try KeyChecks.ed25519PublicKey(Self.hex(encoding)) }
    }

    @Test("real keys pass, and strict verification accepts their signatures")
    func realKeys() throws {
        for _ in 0..<50 {
            let key = Curve25519.Signing.PrivateKey()
            let message = Array("circle".utf8)
            let signature = Array(try key.signature(for: message))
            #expect(throws: Never.self) { try KeyChecks.ed25519PublicKey(Array(key.publicKey.rawRepresentation)) }
            #expect(KeyChecks.verify(signature: signature, message: message, publicKey: Array(key.publicKey.rawRepresentation)))
            #expect(throws: Never.self) { try KeyChecks.x25519PublicKey(Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)) }
        }
    }

    @Test("a signature with S >= L, a small-order R, a flipped bit or another message fails")
    func strictSignatures() throws {
        let key = Curve25519.Signing.PrivateKey()
        let publicKey = Array(key.publicKey.rawRepresentation)
        let message = Array("circle".utf8)
        let signature = Array(try key.signature(for: message))
        // S + L: the same signature in a malleated, non-canonical form.
        let l = Self.hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
        var s = Array(signature[32...])
        var carry = 0
        for index in 0..<32 {
            let sum = Int(s[index]) + Int(l[index]) + carry
            s[index] = UInt8(sum & 0xff)
            carry = sum >> 8
        }
        if carry == 0 {
            #expect(!KeyChecks.verify(signature: Array(signature[..<32]) + s, message: message, publicKey: publicKey))
        }
        let smallR = Self.hex("0100000000000000000000000000000000000000000000000000000000000000") + Array(signature[32...])
        #expect(!KeyChecks.verify(signature: smallR, message: message, publicKey: publicKey))
        var flipped = signature
        flipped[5] ^= 1
        #expect(!KeyChecks.verify(signature: flipped, message: message, publicKey: publicKey))
        #expect(!KeyChecks.verify(signature: signature, message: Array("circl3".utf8), publicKey: publicKey))
        #expect(!KeyChecks.verify(signature: Array(signature.dropLast()), message: message, publicKey: publicKey))
    }

    @Test("identity keys must be in the prime-order subgroup: a valid key plus a point of order 8 is refused; generated keys pass")
    func primeOrder() throws {
        // RFC 8032-style key from the seed 00 01 .. 1f, and the same point plus a torsion point.
        let prime = Self.hex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
        let mixed = Self.hex("b154bd62188ae283dd187fefe8c31f5e276edf083b4cff11c9d5cff856c74440")
        #expect(throws: Never.self) { try KeyChecks.identityKey(prime) }
        #expect(throws: Never.self) { try KeyChecks.ed25519PublicKey(mixed) }
        #expect(throws: KeyCheckError.mixedOrder) { try KeyChecks.identityKey(mixed) }
        for _ in 0..<20 {
            let key = Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
            #expect(throws: Never.self) { try KeyChecks.identityKey(key) }
        }
        // A y with no point (u/v not a square) and a small-order point are refused too.
        #expect(throws: KeyCheckError.self) { try KeyChecks.identityKey(Self.hex("0200000000000000000000000000000000000000000000000000000000000000")) }
        #expect(throws: KeyCheckError.self) { try KeyChecks.identityKey(Self.hex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")) }
    }

    @Test("small-order and non-canonical X25519 keys are refused", arguments: [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0900000000000000000000000000000000000000000000000000000000000080",
    ])
    func badMontgomery(_ encoding: String) {
        #expect(throws: KeyCheckError.self) { try KeyChecks.x25519PublicKey(Self.hex(encoding)) }
    }
}
