/// Domain-separation labels and the byte strings signed with them (docs/PROTOCOL.md).
public enum CircleLabels {
    public static let kxCert = "circle/v1/kx-cert"

    /// The message an identity key signs to certify an X25519 key:
    /// `"circle/v1/kx-cert" || userId (36 ASCII bytes, lowercase UUID) || x25519Pub (32 bytes)`.
    public static func kxCertMessage(userId: String, x25519Public: [UInt8]) -> [UInt8] {
        Array(kxCert.utf8) + Array(userId.utf8) + x25519Public
    }
}
