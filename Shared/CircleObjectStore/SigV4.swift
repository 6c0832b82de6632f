import Crypto
import Foundation

/// AWS Signature Version 4 in the Authorization header, as S3-compatible stores (AWS, MinIO,
/// Ceph RGW, Garage) check it: a canonical form of the request, hashed, signed with a key derived
/// from the secret, the day, the region and the service. Tested against AWS's published examples.
package struct SigV4Signer: Sendable {
    package let accessKey: String
    let secretKey: String
    package let region: String
    package let service: String

    package init(accessKey: String, secretKey: String, region: String, service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    /// SHA-256 of an empty body, in hex.
    package static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The Authorization header's value for a request. `path` is the object's path as S3 names it
    /// (unencoded, starting with "/"); `headers` are the headers to sign, `host` and `x-amz-date`
    /// among them; `payloadHash` is the body's SHA-256 in hex (also sent as x-amz-content-sha256).
    package func authorization(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                               payloadHash: String, date: Date) -> String {
        let (amzDate, day) = Self.stamps(date)
        let canonical = Self.canonicalRequest(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256.hash(data: Data(canonical.utf8))))"
        var key = SymmetricKey(data: Data("AWS4\(secretKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        let signed = Self.signedHeaders(headers)
        return "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signed), Signature=\(signature)"
    }

    /// `x-amz-date` (20130524T000000Z) and the credential scope's day (20130524), in UTC.
    package static func stamps(_ date: Date) -> (amzDate: String, day: String) {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = seconds.quotient(dividingBy: 86_400)
        let time = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        let dayStamp = String(format: "%04d%02d%02d", year, month, day)
        return (dayStamp + String(format: "T%02d%02d%02dZ", time / 3600, time / 60 % 60, time % 60), dayStamp)
    }

    static func canonicalRequest(method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String) -> String {
        let uri = path.split(separator: "/", omittingEmptySubsequences: false).map { encode(String($0)) }.joined(separator: "/")
        let encoded: [(name: String, value: String)] = query.map { pair in (encode(pair.0), encode(pair.1)) }
        let sorted = encoded.sorted { left, right in left.name == right.name ? left.value < right.value : left.name < right.name }
        let canonicalQuery = sorted.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
        let canonicalHeaders = normalized(headers).map { "\($0.0):\($0.1)\n" }.joined()
        return [method, uri.isEmpty ? "/" : uri, canonicalQuery, canonicalHeaders, signedHeaders(headers), payloadHash].joined(separator: "\n")
    }

    /// Lowercase names, values trimmed with inner runs of spaces collapsed, sorted by name.
    static func normalized(_ headers: [(String, String)]) -> [(String, String)] {
        headers.map { name, value in
            (name.lowercased(), value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " "))
        }.sorted { $0.0 < $1.0 }
    }

    static func signedHeaders(_ headers: [(String, String)]) -> String {
        normalized(headers).map(\.0).joined(separator: ";")
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 asks.
    package static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    package static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

extension Int {
    /// Floor division (rounds toward minus infinity).
    fileprivate func quotient(dividingBy divisor: Int) -> Int {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}
