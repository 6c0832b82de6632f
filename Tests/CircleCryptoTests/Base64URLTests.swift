import CircleCore
import Foundation
import Testing

@Suite("Base64URL")
struct Base64URLTests {
    @Test("encodes like Foundation's base64 with the URL alphabet and no padding, and round-trips every length")
    func roundTrip() {
        for length in 0..<100 {
            let bytes = SecureRandom.bytes(length)
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            let encoded = Base64URL.encode(bytes)
            #expect(encoded == expected)
            #expect(Base64URL.decode(encoded).map(Array.init) == bytes)
        }
    }

    @Test("refuses padding, other alphabets, impossible lengths and stray bits")
    func strict() {
        for text in ["AA==", "A+B/", "A", "AAAAA", "AB", "AAB", "A A", "ÄÄ", "AAAA\n"] {
            #expect(Base64URL.decode(text) == nil, "\(text)")
        }
        #expect(Base64URL.decode("AA") == Data([0]))
        #expect(Base64URL.decode("AAA") == Data([0, 0]))
        #expect(Base64URL.decode("") == Data())
    }

    @Test("an id is safe on the command line exactly when its encoding does not start with \"-\"")
    func commandLineSafe() {
        for first in 0...255 {
            let bytes = [UInt8(first)] + [UInt8](repeating: 0xAB, count: 15)
            #expect(Base64URL.isCommandLineSafe(bytes) == !Base64URL.encode(bytes).hasPrefix("-"), "\(first)")
        }
        #expect(!Base64URL.isCommandLineSafe([0xF8]) && !Base64URL.isCommandLineSafe([0xFB]))
        #expect(Base64URL.isCommandLineSafe([0xF7]) && Base64URL.isCommandLineSafe([0xFC]) && Base64URL.isCommandLineSafe([]))
    }
}
