import _NIOFileSystem
import Crypto
import Foundation
import Glibc
import Hummingbird
import NIOCore
import NIOPosix
import ServiceLifecycle
#if canImport(Glibc)
#endif

/// Blob storage on the local file system (or a volume shared by the replicas):
/// `uploads/{uploadId}` while an upload streams in, then `files/{ab}/{name}` once complete.
/// Every acknowledged byte is fsynced; a finished file is fsynced, renamed into place and its
/// folder fsynced, so a crash leaves either the whole file or none.
///
/// A `Service`: it owns its threads for file I/O (large reads, writes and fsyncs never wait
/// behind, or hold up, the database's blocking calls on NIO's shared pool) and stops them when
/// the service group ends, after the services that use it.
package final class FileBlobStore: BlobStore {
    package let root: String
    package let fileIO: FileIO
    package let fileSystem: FileSystem
    let threadPool: NIOThreadPool
    /// Incoming bytes are gathered to this size before each write.
    package static let writeSize = 2 << 20
    /// Bytes read per chunk of a download.
    package static let readSize = 1 << 20

    package init(root: String) throws {
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        self.threadPool = pool
        self.fileIO = FileIO(threadPool: pool)
        self.fileSystem = FileSystem(threadPool: pool)
        for folder in ["uploads", "files"] {
            try FileManager.default.createDirectory(atPath: self.root + "/" + folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
    }

    package static func checkName(_ name: String) {
        precondition(!name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") },
                     "blob names are made by the vault")
    }

    package func uploadPath(_ id: String) -> String {
        Self.checkName(id)
        return "\(root)/uploads/\(id)"
    }

    package func filePath(_ name: String) -> String {
        Self.checkName(name)
        return "\(root)/files/\(name.prefix(2))/\(name)"
    }

    package func createUpload(_ id: String, file name: String) async throws {
        try await fileSystem.withFileHandle(forWritingAt: FilePath(uploadPath(id)), options: .newFile(replaceExisting: true, permissions: .ownerReadWrite)) { _ in }
    }

    /// Reading the body and storing it overlap: while one block is hashed and written (on the
    /// vault's threads, the hash beside the write), the next block is read from the socket. At
    /// most two blocks are held.
    package func append<Body: AsyncSequence & Sendable>(
        upload id: String, at offset: Int64, limit: Int64, body: Body, hashing: inout UploadHashing
    ) async throws -> AppendResult where Body.Element == ByteBuffer {
        let path = FilePath(uploadPath(id))
        let handle = try await fileSystem.openFile(forWritingAt: path, options: .modifyFile(createIfNecessary: false))
        var written: Int64 = 0
        var received: Int64 = 0
        var failure: (any Error)?
        var pending = ByteBuffer()
        // The block being written while the next is read. Owned by this call: every path out of
        // `append` awaits it first, so it never outlives the request (unstructured only because it
        // spans loop iterations).
        var inFlight: Task<(UploadHashing, Int64), any Error>?
        /// Waits for the block being stored; returns the hashes so far.
        func settle() async throws -> UploadHashing {
            guard let task = inFlight else { return hashing }
            inFlight = nil
            let (hashes, count) = try await task.value
            written += count
            return hashes
        }
        func store(_ block: ByteBuffer) async throws {
            hashing = try await settle()
            let before = hashing, at = offset + written
            inFlight = Task {
                async let count = handle.write(contentsOf: block.readableBytesView, toAbsoluteOffset: at)
                var hashes = before
                hashes.update(block)
                return (hashes, try await count)
            }
        }
        do {
            try await handle.resize(to: .bytes(offset))
            do {
                for try await buffer in body {
                    guard received + Int64(buffer.readableBytes) <= limit else { throw BodyTooLong() }
                    received += Int64(buffer.readableBytes)
                    var copy = buffer
                    pending.writeBuffer(&copy)
                    if pending.readableBytes >= Self.writeSize {
                        try await store(pending)
                        pending = ByteBuffer()
                        pending.reserveCapacity(Self.writeSize + 65_536)
                    }
                }
            } catch let error as BodyTooLong {
                failure = error
            } catch {
                // The connection broke: what arrived is kept (tus resumes from there).
                failure = error
            }
            if pending.readableBytes > 0, !(failure is BodyTooLong) { try await store(pending) }
            hashing = try await settle()
            try await handle.synchronize()
            try await handle.close()
        } catch {
            _ = try? await inFlight?.value
            try? await handle.close()
            throw error
        }
        return AppendResult(written: written, failure: failure)
    }

    package func truncateUpload(_ id: String, to length: Int64) async throws {
        try await fileSystem.withFileHandle(forWritingAt: FilePath(uploadPath(id)), options: .modifyFile(createIfNecessary: false)) { handle in
            try await handle.resize(to: .bytes(length))
            try await handle.synchronize()
        }
    }

    package func hashFile(_ name: String) async throws -> [UInt8] {
        try await fileSystem.withFileHandle(forReadingAt: FilePath(filePath(name))) { handle in
            var hasher = SHA256()
            for try await chunk in handle.readChunks(chunkLength: .mebibytes(1)) {
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
            return Array(hasher.finalize())
        }
    }

    /// Links the fsynced upload under the file's name (replacing a link left by an earlier attempt)
    /// and fsyncs the folder. The upload's own name stays until the caller deletes it after the
    /// database commit, so a crash in between loses nothing: the upload can still be finished.
    package func promote(upload id: String, toFile name: String, length: Int64) async throws {
        let source = uploadPath(id), target = filePath(name)
        let folder = (target as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try await fileSystem.withFileHandle(forReadingAt: FilePath(source)) { handle in try await handle.synchronize() }
        try await threadPool.runIfActive {
            if link(source, target) != 0 {
                guard errno == EEXIST, unlink(target) == 0, link(source, target) == 0 else { throw FolderSyncError(path: target, code: errno) }
            }
        }
        try await syncFolder(folder)
    }

    package func deleteUpload(_ id: String) async throws {
        _ = try await fileSystem.removeItem(at: FilePath(uploadPath(id)), strategy: .platformDefault, recursively: false)
    }

    package func deleteFile(_ name: String) async throws {
        _ = try await fileSystem.removeItem(at: FilePath(filePath(name)), strategy: .platformDefault, recursively: false)
    }

    package func read(file name: String, range: ClosedRange<Int64>?, context: some RequestContext) async throws -> ResponseBody {
        let path = filePath(name)
        if let range {
            return try await fileIO.loadFile(path: path, range: Int(range.lowerBound)...Int(range.upperBound), context: context, chunkLength: Self.readSize)
        }
        return try await fileIO.loadFile(path: path, context: context, chunkLength: Self.readSize)
    }

    package func listBlobs() async throws -> [StoredBlob] {
        try await threadPool.runIfActive { [root] in
            let manager = FileManager.default
            func entries(_ folder: String) -> [(String, Date)] {
                ((try? manager.contentsOfDirectory(atPath: folder)) ?? []).compactMap { name in
                    guard let modified = try? manager.attributesOfItem(atPath: folder + "/" + name)[.modificationDate] as? Date else { return nil }
                    return (name, modified)
                }
            }
            var out = entries(root + "/uploads").map { StoredBlob(kind: .upload, name: $0.0, modified: $0.1) }
            for (shard, _) in entries(root + "/files") {
                out += entries(root + "/files/" + shard).map { StoredBlob(kind: .file, name: $0.0, modified: $0.1) }
            }
            return out
        }
    }

    /// Runs until the service group stops, then stops the I/O threads.
    package func run() async throws {
        try? await gracefulShutdown()
        try await threadPool.shutdownGracefully()
    }

    /// fsync of a folder, so a rename in it survives a crash.
    package func syncFolder(_ path: String) async throws {
        try await threadPool.runIfActive {
            let descriptor = open(path, O_RDONLY | O_DIRECTORY)
            guard descriptor >= 0 else { throw FolderSyncError(path: path, code: errno) }
            defer { close(descriptor) }
            guard fsync(descriptor) == 0 else { throw FolderSyncError(path: path, code: errno) }
        }
    }
}

/// A folder could not be fsynced, or a file linked into it.
package struct FolderSyncError: Error, CustomStringConvertible {
    package let path: String
    package let code: Int32

    package init(path: String, code: Int32) {
        self.path = path
        self.code = code
    }
    package var description: String { "storing \(path) failed (errno \(code))" }
}
