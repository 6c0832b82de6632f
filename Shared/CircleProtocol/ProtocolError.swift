/// Why a protocol check (client or server) refused something. Every refusal is explicit: nothing is decrypted, sealed or
/// stored after one.
public enum ProtocolError: Error, Equatable, CustomStringConvertible {
    case decryptionFailed
    case weakKey(String)
    case malformed(String)
    case badSignature(String)
    case refusedKDF(String)
    /// A membership op or envelope that breaks the chain's rules.
    case refused(String)
    /// A membership op that is not on top of the chain's head (another op came first).
    case staleHead(op: UInt64, head: UInt64)
    /// The server showed two different histories of one conversation.
    case fork(String)

    public var description: String {
        switch self {
        case .decryptionFailed: "decryption failed (wrong key or tampered data)"
        case .weakKey(let why): "refused key: \(why)"
        case .malformed(let why): "malformed input: \(why)"
        case .badSignature(let what): "bad signature: \(what)"
        case .refusedKDF(let why): "refused key derivation: \(why)"
        case .refused(let why): "refused: \(why)"
        case .staleHead(let op, let head): "refused: the op is not on top of the head (op \(op), head \(head))"
        case .fork(let why): "fork alarm: \(why)"
        }
    }
}
