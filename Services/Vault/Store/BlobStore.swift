import Crypto
import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle

/// Where the vault keeps ciphertext (ARCHITECTURE 5): unfinished uploads by upload id, finished files
/// by file id; in a folder (`FileBlobStore`) or an S3-compatible bucket (`S3BlobStore`). Ids are made or checked by the vault (hex of random or decoded bytes), so no name
/// from a client ever reaches a path. Implementations make every acknowledged byte durable, and
/// run as a service (what they hold, threads or connections, stops with the service group).
package protocol BlobStore: Service {
    /// Creates an empty upload that will become the file `name`.
    func createUpload(_ id: String, file name: String) async throws

    /// Writes `body` at `offset` of an upload, after dropping anything past `offset` (bytes of an
    /// earlier attempt that were never acknowledged). Stops after `limit` bytes in total. Returns
    /// how many bytes are now durable past `offset`, even when the body failed midway (the
    /// client's connection broke): tus resumes from there. `hashing` sees every stored byte.
    func append<Body: AsyncSequence & Sendable>(
        upload id: String, at offset: Int64, limit: Int64, body: Body, hashing: inout UploadHashing
    ) async throws -> AppendResult where Body.Element == ByteBuffer

    /// Cuts an upload back to `length` bytes (a failed checksum discards the request's bytes).
    func truncateUpload(_ id: String, to length: Int64) async throws

    /// SHA-256 of a file's bytes, read back from storage.
    func hashFile(_ name: String) async throws -> [UInt8]

    /// Makes a complete upload of `length` bytes the file `fileName`: durable, then in place
    /// atomically. Repeating it after it succeeded (a crash before the database commit) succeeds.
    func promote(upload id: String, toFile fileName: String, length: Int64) async throws

    func deleteUpload(_ id: String) async throws
    func deleteFile(_ fileName: String) async throws

    /// The file's bytes in `range` (the whole file without one), streamed.
    func read(file fileName: String, range: ClosedRange<Int64>?, context: some RequestContext) async throws -> ResponseBody

    /// Every file and unfinished upload stored, with when each last changed, for the sweep of
    /// blobs no row names (left by a crash between storage and the database).
    func listBlobs() async throws -> [StoredBlob]
}

/// A file or an unfinished upload as storage holds it.
package struct StoredBlob: Sendable, Equatable {
    package enum Kind: Sendable, Equatable { case file, upload }
    package let kind: Kind
    /// The file's blob name, or the upload's id.
    package let name: String
    package let modified: Date

    package init(kind: Kind, name: String, modified: Date) {
        self.kind = kind
        self.name = name
        self.modified = modified
    }
}

/// What an append stored.
package struct AppendResult: Sendable {
    /// Bytes now durable after the starting offset.
    package var written: Int64
    /// Why the body stopped early, if it did.
    package var failure: (any Error)?

    package init(written: Int64, failure: (any Error)?) {
        self.written = written
        self.failure = failure
    }
}

/// The hashes kept while an upload streams in: of the whole file (when this process saw every
/// byte from zero) and of the current request (for tus's checksum extension).
package struct UploadHashing: Sendable {
    package var whole: SHA256?
    package var request: SHA256?

    package init(whole: SHA256?, request: SHA256?) {
        self.whole = whole
        self.request = request
    }

    package mutating func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            whole?.update(bufferPointer: bytes)
            request?.update(bufferPointer: bytes)
        }
    }
}

/// A body that exceeded its declared length.
package struct BodyTooLong: Error {}
