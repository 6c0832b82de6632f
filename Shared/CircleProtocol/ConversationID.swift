import CircleCore

/// A conversation's id: `H(genesis)`, 32 bytes, written as unpadded base64url wherever it is
/// text (paths, JSON, rows). One type for both forms, so the two are never mixed up.
public struct ConversationID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let text: String

    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
        self.text = Base64URL.encode(bytes)
    }

    /// Reads the text form; nil unless it is exactly 32 bytes of base64url.
    public init?(text: String) {
        guard let data = Base64URL.decode(text), data.count == 32 else { return nil }
        self.bytes = Array(data)
        self.text = text
    }

    public var description: String { text }
}
