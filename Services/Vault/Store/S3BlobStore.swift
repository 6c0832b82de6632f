import AsyncHTTPClient
import CircleObjectStore
import Crypto
import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// Blob storage in an S3-compatible bucket (MinIO, Ceph RGW, Garage, AWS), which every vault and
/// cleanup replica reaches, so no shared folder is needed.
///
/// An upload is an S3 multipart upload to the file's final key, `files/{ab}/{name}`: the object
/// appears, whole, only when the last byte arrived and the parts are completed. Parts are a fixed
/// `partSize` (S3 wants at least 5 MiB for all but the last), but a tus request may end anywhere,
/// so the bytes after the last full part wait in a small "tail" object named by the offset they
/// end at (`tail.{id}.{end}`); the next request, on this replica or another, starts from it.
/// `upload.{id}` records the file's name and the multipart upload's id. (Listed prefixes hold no
/// "/", which some S3-compatible servers' signature checks mishandle in a query.)
///
/// Every byte an append reports is in S3 before it returns. A checksum failure cuts an upload
/// back to where its request started: the tail that ended there is kept until the next append
/// starts, and parts past it are replaced as the upload moves forward again (a part number
/// uploaded twice keeps its latest bytes).
package final class S3BlobStore: BlobStore {
    package let client: S3Client
    /// Bytes of every part but the last.
    package let partSize: Int
    /// The multipart upload behind each upload id, as read from its record (which never changes).
    let uploads = Mutex<[String: UploadRecord]>([:])

    struct UploadRecord: Sendable {
        let file: String
        /// Nil when creating the upload stopped before S3 named its multipart upload.
        let multipartId: String?

        func requireMultipart(_ id: String) throws -> String {
            guard let multipartId else {
                throw S3Error(status: 409, code: "NoSuchUpload", message: "upload \(id) was never fully created", operation: "UploadPart")
            }
            return multipartId
        }
    }

    package init(location: S3Location, partSize: Int = 8 << 20) throws {
        precondition(partSize >= 5 << 20, "S3 refuses parts under 5 MiB but the last")
        self.client = try S3Client(location: location)
        self.partSize = partSize
    }

    func recordKey(_ id: String) -> String {
        FileBlobStore.checkName(id)
        return "upload.\(id)"
    }

    func tailPrefix(_ id: String) -> String {
        FileBlobStore.checkName(id)
        return "tail.\(id)."
    }

    func tailKey(_ id: String, end: Int64) -> String {
        tailPrefix(id) + String(repeating: "0", count: max(0, 20 - String(end).count)) + String(end)
    }

    package func fileKey(_ name: String) -> String {
        FileBlobStore.checkName(name)
        return "files/\(name.prefix(2))/\(name)"
    }

    /// The record names the file first, so an upload whose creation stopped halfway (a crash
    /// before S3 answered) can still be found and aborted by its file's key.
    package func createUpload(_ id: String, file name: String) async throws {
        try await client.putObject(recordKey(id), body: ByteBuffer(string: "\(name)\n"))
        let multipartId = try await client.createMultipartUpload(fileKey(name))
        try await client.putObject(recordKey(id), body: ByteBuffer(string: "\(name)\n\(multipartId)"))
        uploads.withLock { $0[id] = UploadRecord(file: name, multipartId: multipartId) }
    }

    /// The upload's record, from memory or the bucket.
    func record(_ id: String) async throws -> UploadRecord? {
        if let known = uploads.withLock({ $0[id] }) { return known }
        guard let body = try await client.getObject(recordKey(id), limit: 4096) else { return nil }
        let lines = String(buffer: body).split(separator: "\n").map(String.init)
        guard (1...2).contains(lines.count) else { throw S3Error(status: 200, code: nil, message: "upload record \(id) is damaged", operation: "GetObject") }
        let record = UploadRecord(file: lines[0], multipartId: lines.count == 2 ? lines[1] : nil)
        uploads.withLock { known in
            // Records of uploads finished elsewhere are never forgotten one by one: bound them.
            if known.count >= 10_000 { known.removeAll() }
            known[id] = record
        }
        return record
    }

    func requireRecord(_ id: String) async throws -> UploadRecord {
        guard let record = try await record(id) else {
            throw S3Error(status: 404, code: "NoSuchUpload", message: "no record of upload \(id)", operation: "GetObject")
        }
        return record
    }

    /// While one part is uploaded the next is read from the socket; at most two parts are held.
    package func append<Body: AsyncSequence & Sendable>(
        upload id: String, at offset: Int64, limit: Int64, body: Body, hashing: inout UploadHashing
    ) async throws -> AppendResult where Body.Element == ByteBuffer {
        let record = try await requireRecord(id)
        let key = fileKey(record.file)
        let multipartId = try record.requireMultipart(id)
        let size = Int64(partSize)
        var partStart = offset / size * size
        // The bytes of the part the upload stopped in, kept by the request that stopped there.
        var pending = ByteBuffer()
        if offset > partStart {
            guard let tail = try await client.getObject(tailKey(id, end: offset), limit: partSize), Int64(tail.readableBytes) == offset - partStart else {
                throw S3Error(status: 404, code: "NoSuchKey", message: "upload \(id) has no tail ending at \(offset)", operation: "GetObject")
            }
            pending = tail
        }
        // Tails of other offsets are from earlier requests or a cut-back attempt: none is needed now.
        for stale in try await client.list(prefix: tailPrefix(id)) where stale.key != tailKey(id, end: offset) {
            try await client.deleteObject(stale.key)
        }
        pending.reserveCapacity(partSize + 65_536)

        var received: Int64 = 0
        var failure: (any Error)?
        // The part being uploaded while the next is read. Owned by this call: every path out of
        // `append` (the next part, the end of the body, an error) awaits it first, so it never
        // outlives the request; it is unstructured only because it spans loop iterations.
        var inFlight: Task<Void, any Error>?
        let client = self.client
        /// Uploads the first full part of `pending` (waiting for the one before), and moves on.
        func storePart() async throws {
            try await inFlight?.value
            inFlight = nil
            let part = pending.readSlice(length: partSize)!
            let number = Int(partStart / size) + 1
            inFlight = Task { _ = try await client.uploadPart(key, uploadId: multipartId, number: number, body: part) }
            partStart += size
            pending.discardReadBytes()
        }
        do {
            do {
                for try await buffer in body {
                    guard received + Int64(buffer.readableBytes) <= limit else { throw BodyTooLong() }
                    received += Int64(buffer.readableBytes)
                    hashing.update(buffer)
                    var copy = buffer
                    pending.writeBuffer(&copy)
                    while pending.readableBytes >= partSize { try await storePart() }
                }
            } catch let error as BodyTooLong {
                failure = error
            } catch {
                // The connection broke: what arrived is kept (tus resumes from there).
                failure = error
            }
            try await inFlight?.value
            inFlight = nil
            if failure is BodyTooLong {
                // Nothing past the last stored part is kept: the caller cuts back to `offset` anyway.
                return AppendResult(written: max(0, partStart - offset), failure: failure)
            }
            let end = partStart + Int64(pending.readableBytes)
            if pending.readableBytes > 0, end > offset {
                if failure == nil, received == limit {
                    // The upload's last bytes: the last part, which may be short.
                    _ = try await client.uploadPart(key, uploadId: multipartId, number: Int(partStart / size) + 1, body: pending)
                } else {
                    try await client.putObject(tailKey(id, end: end), body: pending)
                }
            }
            return AppendResult(written: end - offset, failure: failure)
        } catch {
            _ = try? await inFlight?.value
            throw error
        }
    }

    /// Nothing moves: the next append at `length` starts from the tail that ended there (kept
    /// since that append began) and replaces the parts after it.
    package func truncateUpload(_ id: String, to length: Int64) async throws {
        _ = try await requireRecord(id)
        let size = Int64(partSize)
        if length % size != 0, try await client.getObject(tailKey(id, end: length), limit: partSize) == nil {
            throw S3Error(status: 404, code: "NoSuchKey", message: "upload \(id) cannot go back to \(length)", operation: "GetObject")
        }
    }

    package func hashFile(_ name: String) async throws -> [UInt8] {
        var hasher = SHA256()
        for try await chunk in try await client.streamObject(fileKey(name), range: nil) {
            chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        }
        return Array(hasher.finalize())
    }

    /// Completes the multipart upload with parts 1…n of the upload's length. Repeating it after a
    /// success (a crash before the database commit) finds the file in place and succeeds.
    package func promote(upload id: String, toFile name: String, length: Int64) async throws {
        let key = fileKey(name)
        guard let record = try await record(id) else {
            guard try await client.headObject(key) == length else {
                throw S3Error(status: 404, code: "NoSuchUpload", message: "upload \(id) is gone and file \(name) is not whole", operation: "Promote")
            }
            return
        }
        let multipartId = try record.requireMultipart(id)
        if length == 0 {
            // S3 wants at least one part; an empty file is an empty object.
            try await client.putObject(key, body: ByteBuffer())
            try await client.abortMultipartUpload(key, uploadId: multipartId)
            return
        }
        let size = Int64(partSize)
        let count = Int((length + size - 1) / size)
        let parts: [S3Part]
        do {
            parts = try await client.listParts(key, uploadId: multipartId).filter { $0.number <= count }
        } catch let error as S3Error where error.code == "NoSuchUpload" {
            // Completed by an earlier attempt.
            guard try await client.headObject(key) == length else { throw error }
            return
        }
        for number in 1...count {
            let expected = number < count ? size : length - size * Int64(count - 1)
            guard number - 1 < parts.count, parts[number - 1].number == number, parts[number - 1].size == expected else {
                throw S3Error(status: 409, code: "IncompleteUpload", message: "upload \(id) lacks part \(number) of \(count)", operation: "Promote")
            }
        }
        try await client.completeMultipartUpload(key, uploadId: multipartId, parts: parts)
        uploads.withLock { $0[id] = nil }
    }

    package func deleteUpload(_ id: String) async throws {
        if let record = try await record(id) {
            let key = fileKey(record.file)
            if let multipartId = record.multipartId {
                try await client.abortMultipartUpload(key, uploadId: multipartId)
            } else {
                // Creation stopped before the record named the multipart upload: find it by key.
                for upload in try await client.listMultipartUploads(prefix: "") where upload.key == key {
                    try await client.abortMultipartUpload(key, uploadId: upload.uploadId)
                }
            }
        }
        for tail in try await client.list(prefix: tailPrefix(id)) { try await client.deleteObject(tail.key) }
        try await client.deleteObject(recordKey(id))
        uploads.withLock { $0[id] = nil }
    }

    package func deleteFile(_ name: String) async throws {
        try await client.deleteObject(fileKey(name))
    }

    package func read(file name: String, range: ClosedRange<Int64>?, context: some RequestContext) async throws -> ResponseBody {
        ResponseBody(asyncSequence: try await client.streamObject(fileKey(name), range: range))
    }

    /// Files by their key; uploads by their record and tails (the newest time of those).
    package func listBlobs() async throws -> [StoredBlob] {
        var files: [StoredBlob] = []
        var uploads: [String: Date] = [:]
        for object in try await client.list(prefix: "") {
            let parts = object.key.split(separator: "/")
            if parts.count == 3, parts[0] == "files" {
                files.append(StoredBlob(kind: .file, name: String(parts[2]), modified: object.modified))
                continue
            }
            let dotted = object.key.split(separator: ".")
            if dotted.count >= 2, dotted[0] == "upload" || dotted[0] == "tail" {
                uploads[String(dotted[1])] = max(uploads[String(dotted[1])] ?? .distantPast, object.modified)
            }
        }
        return files + uploads.map { StoredBlob(kind: .upload, name: $0.key, modified: $0.value) }
    }

    /// Every file and upload in the bucket, for the emergency destruction of the server; returns
    /// how many objects went.
    package func deleteEverything() async throws -> Int {
        for upload in try await client.listMultipartUploads(prefix: "") {
            try await client.abortMultipartUpload(upload.key, uploadId: upload.uploadId)
        }
        let objects = try await client.list(prefix: "")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, object) in objects.enumerated() {
                if index >= 8 { try await group.next() }
                group.addTask { try await self.client.deleteObject(object.key) }
            }
            try await group.waitForAll()
        }
        uploads.withLock { $0.removeAll() }
        return objects.count
    }

    /// Runs until the service group stops, then closes the HTTP connections.
    package func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
