/// Just enough edwards25519 arithmetic to tell whether a public key lies in the prime-order
/// subgroup (PROTOCOL 3): decompress the point and check that `[L]A` is the identity. A key of
/// mixed order (a valid key plus a torsion point) passes the small-order check, and verifiers
/// that multiply by the cofactor would accept signatures others refuse; Circle refuses such keys
/// at registration and when pinning. Variable time: it only ever sees public keys.
enum Edwards25519 {
    /// A field element mod p = 2^255 - 19, as four little-endian 64-bit limbs below 2^256.
    struct Field: Equatable {
        var limbs: [UInt64]

        static let zero = Field(limbs: [0, 0, 0, 0])
        static let one = Field(limbs: [1, 0, 0, 0])
        static let p = Field(limbs: [0xffff_ffff_ffff_ffed, .max, .max, 0x7fff_ffff_ffff_ffff])
        /// d = -121665/121666.
        static let d = Field(bytes: KeyChecks.hex("a3785913ca4deb75abd841414d0a700098e879777940c78c73fe6f2bee6c0352"))
        /// sqrt(-1) = 2^((p-1)/4).
        static let sqrtMinusOne = Field(bytes: KeyChecks.hex("b0a00e4a271beec478e42fad0618432fa7d7fb3d99004d2b0bdfc14f8024832b"))

        init(limbs: [UInt64]) { self.limbs = limbs }

        /// 32 little-endian bytes (all 256 bits; callers clear the sign bit first).
        init(bytes: [UInt8]) {
            limbs = (0..<4).map { limb in (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[limb * 8 + $1]) << (8 * UInt64($1)) } }
        }

        static func + (a: Field, b: Field) -> Field {
            var out = [UInt64](repeating: 0, count: 4)
            var carry: UInt64 = 0
            for i in 0..<4 {
                let (s1, o1) = a.limbs[i].addingReportingOverflow(b.limbs[i])
                let (s2, o2) = s1.addingReportingOverflow(carry)
                out[i] = s2
                carry = (o1 ? 1 : 0) + (o2 ? 1 : 0)
            }
            // 2^256 = 38 (mod p).
            return Field(limbs: out).adding38(times: carry)
        }

        static func - (a: Field, b: Field) -> Field {
            // A borrow added 2^256, which is 38 too much mod p: take 38 off until none is left.
            var (limbs, borrowed) = subtract(a.limbs, b.limbs)
            while borrowed { (limbs, borrowed) = subtract(limbs, [38, 0, 0, 0]) }
            return Field(limbs: limbs)
        }

        /// a - b over four limbs, wrapping, and whether it borrowed.
        private static func subtract(_ a: [UInt64], _ b: [UInt64]) -> (limbs: [UInt64], borrowed: Bool) {
            var out = [UInt64](repeating: 0, count: 4)
            var borrow: UInt64 = 0
            for i in 0..<4 {
                let (d1, o1) = a[i].subtractingReportingOverflow(b[i])
                let (d2, o2) = d1.subtractingReportingOverflow(borrow)
                out[i] = d2
                borrow = (o1 || o2) ? 1 : 0
            }
            return (out, borrow == 1)
        }

        static func * (a: Field, b: Field) -> Field {
            var wide = [UInt64](repeating: 0, count: 8)
            for i in 0..<4 {
                var carry: UInt64 = 0
                for j in 0..<4 {
                    let (high, low) = a.limbs[i].multipliedFullWidth(by: b.limbs[j])
                    let (s1, o1) = wide[i + j].addingReportingOverflow(low)
                    let (s2, o2) = s1.addingReportingOverflow(carry)
                    wide[i + j] = s2
                    carry = high &+ (o1 ? 1 : 0) &+ (o2 ? 1 : 0)
                }
                wide[i + 4] = carry
            }
            // low + 38 * high, then fold the carry the same way.
            var out = [UInt64](repeating: 0, count: 4)
            var carry: UInt64 = 0
            for i in 0..<4 {
                let (high, low) = wide[i + 4].multipliedFullWidth(by: 38)
                let (s1, o1) = wide[i].addingReportingOverflow(low)
                let (s2, o2) = s1.addingReportingOverflow(carry)
                out[i] = s2
                carry = high &+ (o1 ? 1 : 0) &+ (o2 ? 1 : 0)
            }
            return Field(limbs: out).adding38(times: carry)
        }

        /// self + 38 * times, for a carry out of the top limb.
        private func adding38(times: UInt64) -> Field {
            var result = self
            var carry = times
            while carry > 0 {
                var add = carry &* 38
                carry = 0
                for i in 0..<4 {
                    let (s, o) = result.limbs[i].addingReportingOverflow(add)
                    result.limbs[i] = s
                    add = o ? 1 : 0
                }
                carry = add
            }
            return result
        }

        /// The value reduced below p (it is below 2^256 = 2p + 38, so at most two subtractions).
        var canonical: Field {
            var limbs = self.limbs
            while !Self.lessThan(limbs, Self.p.limbs) { limbs = Self.subtract(limbs, Self.p.limbs).limbs }
            return Field(limbs: limbs)
        }

        static func lessThan(_ a: [UInt64], _ b: [UInt64]) -> Bool {
            for i in stride(from: 3, through: 0, by: -1) where a[i] != b[i] { return a[i] < b[i] }
            return false
        }

        var isZero: Bool { canonical == .zero }
        var isOdd: Bool { canonical.limbs[0] & 1 == 1 }

        /// self^exponent, the exponent as little-endian limbs.
        func power(_ exponent: [UInt64]) -> Field {
            var result = Field.one
            for limb in exponent.reversed() {
                for bit in stride(from: 63, through: 0, by: -1) {
                    result = result * result
                    if (limb >> UInt64(bit)) & 1 == 1 { result = result * self }
                }
            }
            return result
        }

        static func == (a: Field, b: Field) -> Bool { a.canonical.limbs == b.canonical.limbs }
    }

    /// A point in extended coordinates (X : Y : Z : T), x = X/Z, y = Y/Z, xy = T/Z.
    struct Point {
        var x: Field, y: Field, z: Field, t: Field

        static let identity = Point(x: .zero, y: .one, z: .one, t: .zero)

        /// The unified addition of twisted Edwards curves with a = -1 (complete here: d is not a
        /// square), also used for doubling.
        static func + (p: Point, q: Point) -> Point {
            let a = (p.y - p.x) * (q.y - q.x)
            let b = (p.y + p.x) * (q.y + q.x)
            let c = p.t * (Field.d + Field.d) * q.t
            let d = (p.z + p.z) * q.z
            let e = b - a, f = d - c, g = d + c, h = b + a
            return Point(x: e * f, y: g * h, z: f * g, t: e * h)
        }

        var isIdentity: Bool { x.isZero && (y - z).isZero }

        /// [scalar]self, the scalar as little-endian limbs.
        func times(_ scalar: [UInt64]) -> Point {
            var result = Point.identity
            var addend = self
            for limb in scalar {
                for bit in 0..<64 {
                    if (limb >> UInt64(bit)) & 1 == 1 { result = result + addend }
                    addend = addend + addend
                }
            }
            return result
        }
    }

    /// (p - 5) / 8.
    static let sqrtExponent: [UInt64] = [0xffff_ffff_ffff_fffd, .max, .max, 0x0fff_ffff_ffff_ffff]
    /// The group order L = 2^252 + 27742317777372353535851937790883648493.
    static let order: [UInt64] = [0x5812_631a_5cf5_d3ed, 0x14de_f9de_a2f7_9cd6, 0, 0x1000_0000_0000_0000]

    /// The point a canonical 32-byte encoding names, or nil when no point has that y.
    static func decode(_ bytes: [UInt8]) -> Point? {
        guard bytes.count == 32 else { return nil }
        var yBytes = bytes
        let sign = yBytes[31] >> 7
        yBytes[31] &= 0x7f
        let y = Field(bytes: yBytes)
        let u = y * y - .one
        let v = Field.d * y * y + .one
        let v3 = v * v * v
        var x = u * v3 * (u * v3 * v3 * v).power(sqrtExponent)
        let check = v * x * x
        if check != u {
            guard check == Field.zero - u else { return nil }
            x = x * Field.sqrtMinusOne
        }
        if x.isZero, sign == 1 { return nil }
        if (x.isOdd ? 1 : 0) != sign { x = Field.zero - x }
        return Point(x: x, y: y, z: .one, t: x * y)
    }

    /// Whether the encoding is a point of the prime-order subgroup ([L]A is the identity).
    static func isInPrimeOrderSubgroup(_ bytes: [UInt8]) -> Bool {
        guard let point = decode(bytes) else { return false }
        return point.times(order).isIdentity
    }
}
