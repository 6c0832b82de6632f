/// The sizes and lengths of the vault's formats (PROTOCOL 9) that the server checks too: ids,
/// link parameters, and which stored lengths a file payload can have. The encryption itself is
/// the client's (CircleKit's `VaultStream` and `VaultKeys`).
public enum VaultFormat {
    public static let fileIdSize = 16
    public static let linkIdSize = 16
    public static let linkKeySize = 32
    public static let linkSaltSize = 16
    /// PBKDF2-SHA256 iterations a link password needs at least.
    public static let linkIterations = 600_000

    public static let version: UInt8 = 1
    public static let chunkSize = 64 * 1024
    public static let tagSize = 16
    public static let saltSize = 16
    public static let headerSize = 1 + saltSize

    /// Padmé (Nikitin et al., 2019): rounds `length` up so that only the top bits of its
    /// exponent-sized mantissa remain; at most 12% larger, and the length leaks O(log log n) bits.
    public static func padme(_ length: UInt64) -> UInt64 {
        guard length >= 2 else { return length }
        let e = UInt64(63 - length.leadingZeroBitCount)            // floor(log2 L)
        let s = UInt64(64 - e.leadingZeroBitCount)                 // floor(log2 E) + 1
        let lastBits = e - s
        let mask: UInt64 = (1 << lastBits) - 1
        return (length + mask) & ~mask
    }

    /// Chunks in a stream of `paddedLength` plaintext bytes (an empty file has one empty chunk).
    public static func chunkCount(paddedLength: UInt64) -> UInt64 {
        max(1, (paddedLength + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    /// The stored size of a file whose content is `size` bytes.
    public static func ciphertextLength(size: UInt64) -> UInt64 {
        let padded = padme(size)
        return UInt64(headerSize) + padded + UInt64(tagSize) * chunkCount(paddedLength: padded)
    }

    /// Whether some stream has exactly this length: whole chunks and a Padmé length inside (the
    /// server refuses uploads of other lengths).
    public static func isValidLength(_ length: UInt64) -> Bool {
        guard length >= UInt64(headerSize + tagSize) else { return false }
        let body = length - UInt64(headerSize)
        let full = UInt64(chunkSize + tagSize)
        let chunks = max(1, (body + full - 1) / full)
        guard body >= chunks * UInt64(tagSize) else { return false }
        let padded = body - chunks * UInt64(tagSize)
        return chunkCount(paddedLength: padded) == chunks && padme(padded) == padded
    }
}
