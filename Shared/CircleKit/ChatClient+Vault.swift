import AsyncHTTPClient
import CircleCore
import CircleProtocol
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// A vault file as its owner sees it: decrypted name, type and size.
public struct VaultFile: Sendable {
    public let id: String
    public let name: String
    public let type: String
    public let size: UInt64
    public let storedSize: Int64
    public let level: String
    public let createdAt: Int64
    public let expiresAt: Int64
}

/// What an upload is doing, for progress displays.
public struct VaultProgress: Sendable {
    public enum Stage: String, Sendable { case encrypting, uploading, verifying }
    public let stage: Stage
    public let done: Int64
    public let total: Int64
}

/// The vault (PROTOCOL 9, API.md "Vault"): files sealed here in STREAM chunks and sent with tus;
/// names, types and sizes sealed in the metadata; keys wrapped under the vault master key. The
/// file is read, sealed and sent in slices, never held whole in memory.
extension ChatClient {
    struct FileEntry: Decodable, Sendable {
        let id: String, level: String, meta: String, wrap: String?, size: Int64, sha256: String, createdAt: Int64, expiresAt: Int64
    }
    struct FileList: Decodable, Sendable { let files: [FileEntry]; let used: Int64; let quota: Int64 }

    /// Bytes sent per PATCH.
    static let vaultSlice = 4 << 20

    /// Uploads the file at `path`; returns its id.
    public func vaultPut(path: String, name: String? = nil, type: String = "application/octet-stream", expiresAt: Int64 = 0,
                         progress: @Sendable (VaultProgress) -> Void = { _ in }) async throws -> String {
        try requireSession()
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ProtocolError.malformed("cannot read \(path)") }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: 0)
        let fileKey = SecureRandom.bytes(32)
        var fileIdBytes: [UInt8]
        repeat { fileIdBytes = SecureRandom.bytes(VaultKeys.fileIdSize) } while !Base64URL.isCommandLineSafe(fileIdBytes)
        let fileId = Base64URL.encode(fileIdBytes)
        let metadata = try VaultMetadata(name: name ?? URL(fileURLWithPath: path).lastPathComponent, type: type, size: size)
            .seal(fileKey: fileKey, fileId: fileIdBytes)
        let wrap = try VaultKeys.wrap(fileKey: fileKey, owner: state.userId, fileId: fileIdBytes, vaultMasterKey: state.vaultMasterKey.bytes)
        let length = Int64(VaultStream.ciphertextLength(size: size))
        func text(_ value: String) -> String { Data(value.utf8).base64EncodedString() }
        var fields = "fileId \(text(fileId)),meta \(text(Base64URL.encode(metadata))),wrap \(text(Base64URL.encode(wrap)))"
        if expiresAt > 0 { fields += ",expiresAt \(text(String(expiresAt)))" }
        let created = try await api.bytes(.POST, "/api/v1/vault/uploads", headers: [
            "Tus-Resumable": "1.0.0", "Upload-Length": String(length), "Upload-Metadata": fields,
        ], body: nil)
        guard let location = created.headers.first(name: "Location") else { throw ProtocolError.malformed("the server named no upload") }

        var sealer = VaultStreamSealer(fileKey: fileKey, size: size)
        var hasher = SHA256()
        var pending = sealer.header
        var offset: Int64 = 0
        var read: UInt64 = 0
        while true {
            let slice = try handle.read(upToCount: Self.vaultSlice) ?? Data()
            read += UInt64(slice.count)
            progress(VaultProgress(stage: .encrypting, done: Int64(read), total: Int64(size)))
            pending += slice.isEmpty ? try sealer.finish() : try sealer.seal(slice)
            let last = slice.isEmpty
            if pending.count >= Self.vaultSlice || last {
                hasher.update(data: pending)
                offset = try await vaultPatch(location, offset: offset, pending)
                progress(VaultProgress(stage: .uploading, done: offset, total: length))
                pending.removeAll(keepingCapacity: true)
            }
            if last { break }
        }
        // The server's hash of what it stored must be the one of what was sent.
        progress(VaultProgress(stage: .verifying, done: length, total: length))
        let stored = try await fileEntry(fileId)
        guard stored.sha256 == Base64URL.encode(Array(hasher.finalize())), stored.size == length else {
            throw ProtocolError.refused("the server stored other bytes than were sent")
        }
        return fileId
    }

    /// One PATCH with its sha256; after a broken connection, asks for the offset and sends the rest.
    func vaultPatch(_ location: String, offset: Int64, _ bytes: [UInt8]) async throws -> Int64 {
        var sent = 0
        var at = offset
        for attempt in 0..<5 {
            let part = Array(bytes[sent...])
            do {
                let answer = try await api.bytes(.PATCH, location, headers: [
                    "Tus-Resumable": "1.0.0", "Upload-Offset": String(at), "Content-Type": "application/offset+octet-stream",
                    "Upload-Checksum": "sha256 " + Data(SHA256.hash(data: part)).base64EncodedString(),
                ], body: part)
                guard let text = answer.headers.first(name: "Upload-Offset"), let now = Int64(text) else { throw ProtocolError.malformed("no Upload-Offset") }
                return now
            } catch let error as CircleAPIError where error.status == 0 && attempt < 4 {
                try await Task.sleep(for: .milliseconds(200 << attempt))
                let head = try await api.bytes(.HEAD, location, headers: ["Tus-Resumable": "1.0.0"], body: nil)
                guard let text = head.headers.first(name: "Upload-Offset"), let now = Int64(text), now >= at, now <= offset + Int64(bytes.count) else { throw error }
                sent += Int(now - at)
                at = now
            }
        }
        throw ProtocolError.refused("the upload did not go through")
    }

    /// The caller's files, decrypted.
    public func vaultList() async throws -> (files: [VaultFile], used: Int64, quota: Int64) {
        try requireSession()
        let list: FileList = try await api.call(.GET, "/api/v1/vault/files")
        var files: [VaultFile] = []
        for entry in list.files {
            let (_, meta) = try openEntry(entry)
            files.append(VaultFile(id: entry.id, name: meta.name, type: meta.type, size: meta.size, storedSize: entry.size, level: entry.level,
                                   createdAt: entry.createdAt, expiresAt: entry.expiresAt))
        }
        return (files, list.used, list.quota)
    }

    /// One file's entry, refused when the server answers with another file's (which would open
    /// under its own id and key, and be taken for the one asked for).
    func fileEntry(_ fileId: String) async throws -> FileEntry {
        let entry: FileEntry = try await api.call(.GET, "/api/v1/vault/files/\(fileId)")
        guard entry.id == fileId else { throw ProtocolError.refused("the server answered with another file than the one asked for") }
        return entry
    }

    func openEntry(_ entry: FileEntry) throws -> (fileKey: [UInt8], meta: VaultMetadata) {
        guard let fileId = Base64URL.decode(entry.id).map(Array.init), let wrap = entry.wrap.flatMap(Base64URL.decode).map(Array.init),
              let meta = Base64URL.decode(entry.meta).map(Array.init) else { throw ProtocolError.malformed("a file entry without its keys") }
        let fileKey = try VaultKeys.unwrap(wrap, owner: state.userId, fileId: fileId, vaultMasterKey: state.vaultMasterKey.bytes)
        return (fileKey, try VaultMetadata.open(meta, fileKey: fileKey, fileId: fileId))
    }

    /// Downloads, checks and decrypts a file into `path` (written to a temporary file beside it
    /// and renamed only once the final chunk verified); returns its metadata.
    public func vaultGet(_ fileId: String, to path: String) async throws -> VaultMetadata {
        try requireSession()
        let entry = try await fileEntry(fileId)
        let (fileKey, meta) = try openEntry(entry)
        var opener = VaultStreamOpener(fileKey: fileKey, size: meta.size)
        var hasher = SHA256()
        let temporary = path + ".part-\(UUID().uuidString.prefix(8))"
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
              let out = FileHandle(forWritingAtPath: temporary) else { throw ProtocolError.malformed("cannot write \(path)") }
        do {
            try await api.download("/api/v1/vault/files/\(fileId)/content") { buffer in
                hasher.update(data: buffer.readableBytesView)
                let plain = try opener.open(buffer.readableBytesView)
                if !plain.isEmpty { try out.write(contentsOf: plain) }
            }
            try opener.finish()
            guard Base64URL.encode(Array(hasher.finalize())) == entry.sha256 else { throw ProtocolError.refused("the download is not the stored file") }
            try out.synchronize()
            try out.close()
            _ = try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? out.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return meta
    }

    /// Creates a share link; returns the address to hand out (the key is in the fragment).
    public func vaultShare(_ fileId: String, password: String? = nil, expiresAt: Int64 = 0, maxDownloads: Int64 = 0) async throws -> String {
        try requireSession()
        let entry = try await fileEntry(fileId)
        let (fileKey, _) = try openEntry(entry)
        let linkId = SecureRandom.bytes(VaultKeys.linkIdSize), linkKey = SecureRandom.bytes(VaultKeys.linkKeySize)
        let salt = password == nil ? nil : SecureRandom.bytes(VaultKeys.linkSaltSize)
        let secrets = try VaultKeys.linkSecrets(linkKey: linkKey, password: password, salt: salt)
        struct CreateLink: Encodable, Sendable {
            let linkId: String, wrap: String, verifier: String, salt: String?, iterations: Int?, expiresAt: Int64, maxDownloads: Int64
        }
        try await api.send(.POST, "/api/v1/vault/files/\(fileId)/links", body: CreateLink(
            linkId: Base64URL.encode(linkId), wrap: Base64URL.encode(try VaultKeys.wrapForLink(fileKey: fileKey, linkId: linkId, secrets: secrets)),
            verifier: Base64URL.encode(secrets.verifier), salt: salt.map { Base64URL.encode($0) }, iterations: salt == nil ? nil : VaultKeys.linkIterations,
            expiresAt: expiresAt, maxDownloads: maxDownloads))
        return "\(api.baseURL)/s/\(Base64URL.encode(linkId))#\(Base64URL.encode(linkKey))"
    }

    public func vaultRevoke(link linkId: String) async throws {
        try requireSession()
        try await api.send(.DELETE, "/api/v1/vault/links/\(linkId)")
    }

    public func vaultRemove(_ fileId: String) async throws {
        try requireSession()
        try await api.send(.DELETE, "/api/v1/vault/files/\(fileId)")
    }
}

extension CircleAPI {
    /// A request with a binary body (or none) whose answer headers matter (tus).
    func bytes(_ method: HTTPMethod, _ path: String, headers: [String: String], body: [UInt8]?) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: path.hasPrefix("http") ? path : baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(300))
        } catch {
            throw CircleAPIError(status: 0, slug: "transport", detail: "\(error)")
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            throw CircleAPIError(problem: Data(buffer: (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()), status: response.status)
        }
        return response
    }

    /// Streams a download through `each`, piece by piece.
    func download(_ path: String, each: (ByteBuffer) throws -> Void) async throws {
        let response = try await bytes(.GET, path, headers: [:], body: nil)
        do {
            for try await buffer in response.body { try each(buffer) }
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw CircleAPIError(status: 0, slug: "transport", detail: "\(error)")
        }
    }
}
