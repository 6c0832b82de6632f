import CircleProtocol
import Crypto

/// Safety numbers (PROTOCOL 3): what two members compare to know they see each
/// other's real identity keys.
///
/// ```
/// h_0     = 0x00 || "circle/v1/safety" || serverId || userId || identityPub
/// h_{i+1} = SHA-512(h_i || identityPub)            5,200 times
/// digits  = for each of the first six 5-byte chunks of h_5200: u40(chunk) mod 100000, 5 digits
/// ```
/// The two members' 30-digit halves are sorted and joined (60 digits, shown in 12 groups of 5).
/// Display names are not hashed.
public enum SafetyNumber {
    public static let iterations = 5200
    static let label = Array("circle/v1/safety".utf8)

    public static func half(serverId: String, userId: String, identityPublic: [UInt8]) -> String {
        var hash = [0x00] + label + Array(serverId.utf8) + Array(userId.utf8) + identityPublic
        for _ in 0..<iterations {
            hash = Array(SHA512.hash(data: hash + identityPublic))
        }
        var digits = ""
        for chunk in 0..<6 {
            let value = hash[chunk * 5..<chunk * 5 + 5].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % 100_000
            let text = String(value)
            digits += String(repeating: "0", count: 5 - text.count) + text
        }
        return digits
    }

    /// The number both members see: the two halves sorted, as 12 groups of 5 digits.
    public static func combined(_ a: String, _ b: String) -> String {
        let joined = [a, b].sorted().joined()
        var groups: [String] = []
        var index = joined.startIndex
        while index < joined.endIndex {
            let end = joined.index(index, offsetBy: 5, limitedBy: joined.endIndex) ?? joined.endIndex
            groups.append(String(joined[index..<end]))
            index = end
        }
        return groups.joined(separator: " ")
    }
}
