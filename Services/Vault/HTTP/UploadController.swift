import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import MessagingStore
import NIOCore
import SQLKit
import VaultCore
import VaultStore

/// Resumable uploads, tus 1.0 (core, creation, creation-with-upload, expiration, termination,
/// checksum with sha256), so any standard tus client can upload. Bytes stream to blob storage and
/// are fsynced before an offset is acknowledged; the quota is reserved when an upload is created,
/// so going over is refused (413) before a byte is stored.
///
/// `Upload-Metadata` carries, each value the base64 of a text: `fileId`, `meta` and `wrap`
/// (unpadded base64url, PROTOCOL 9), optional `level` (private, conversation or public),
/// `conversationId` (for conversation files) and `expiresAt` (milliseconds, 0 for never).
struct UploadController: Sendable {
    let state: VaultState

    static let basePath = "/api/v1/vault/uploads"
    static let tusVersion = "1.0.0"
    static let extensions = "creation,creation-with-upload,expiration,termination,checksum"
    static let offsetContentType = "application/offset+octet-stream"

    func addRoutes(to router: Router<CircleRequestContext>) {
        router.on(RouterPath(Self.basePath), method: .options, use: options)
        let uploads = router.authenticated(RouterPath(Self.basePath))
        uploads.post(use: create)
        uploads.head("/{id}", use: head)
        uploads.patch("/{id}", use: patch)
        uploads.delete("/{id}", use: terminate)
    }

    // MARK: tus headers

    static let tusResumable = HTTPField.Name("Tus-Resumable")!
    static let tusVersionName = HTTPField.Name("Tus-Version")!
    static let tusExtension = HTTPField.Name("Tus-Extension")!
    static let tusMaxSize = HTTPField.Name("Tus-Max-Size")!
    static let tusChecksumAlgorithm = HTTPField.Name("Tus-Checksum-Algorithm")!
    static let uploadOffset = HTTPField.Name("Upload-Offset")!
    static let uploadLength = HTTPField.Name("Upload-Length")!
    static let uploadMetadata = HTTPField.Name("Upload-Metadata")!
    static let uploadExpires = HTTPField.Name("Upload-Expires")!
    static let uploadChecksum = HTTPField.Name("Upload-Checksum")!
    static let uploadDeferLength = HTTPField.Name("Upload-Defer-Length")!

    func tusProblem(_ status: Int, _ slug: String, _ title: String, _ detail: String) -> Problem {
        Problem(status: status, slug: slug, title: title, detail: detail, headers: ["Tus-Resumable": Self.tusVersion])
    }

    func requireTus(_ request: Request) throws {
        guard request.headers[Self.tusResumable] == Self.tusVersion else {
            throw Problem(status: 412, slug: "tus-version", title: "Unsupported tus version",
                          detail: "Send Tus-Resumable: \(Self.tusVersion).", headers: ["Tus-Version": Self.tusVersion])
        }
    }

    func headers(offset: Int64? = nil, expires: Int64? = nil) -> HTTPFields {
        var fields = HTTPFields()
        fields[Self.tusResumable] = Self.tusVersion
        fields[.cacheControl] = "no-store"
        if let offset { fields[Self.uploadOffset] = String(offset) }
        if let expires { fields[Self.uploadExpires] = HTTPDate.format(millis: expires) }
        return fields
    }

    // MARK: endpoints

    @Sendable func options(request: Request, context: CircleRequestContext) async throws -> Response {
        var fields = HTTPFields()
        fields[Self.tusResumable] = Self.tusVersion
        fields[Self.tusVersionName] = Self.tusVersion
        fields[Self.tusExtension] = Self.extensions
        fields[Self.tusMaxSize] = String(state.settings.maxFileSize)
        fields[Self.tusChecksumAlgorithm] = "sha256"
        return Response(status: .noContent, headers: fields)
    }

    @Sendable func create(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        try requireTus(request)
        guard request.headers[Self.uploadDeferLength] == nil else {
            throw tusProblem(400, "bad-request", "Bad request", "Upload-Defer-Length is not supported: send Upload-Length.")
        }
        guard let lengthText = request.headers[Self.uploadLength], let length = Int64(lengthText), length >= 0 else {
            throw tusProblem(400, "bad-request", "Bad request", "Upload-Length must be the number of bytes to upload.")
        }
        guard length <= state.settings.maxFileSize else {
            throw tusProblem(413, "file-too-large", "File too large", "The largest file this server stores is \(state.settings.maxFileSize) bytes; this one is \(length).")
        }
        guard VaultFormat.isValidLength(UInt64(length)) else {
            throw tusProblem(422, "invalid-length", "Invalid length", "\(length) bytes is not the length of any Circle vault payload (PROTOCOL 9.1).")
        }
        let metadata = try UploadMetadata(header: request.headers[Self.uploadMetadata])
        let now = state.clock.now()
        try state.checkExpiry(metadata.expiresAt, field: "expiresAt", now: now)
        try await state.rateLimiter.check(.uploadCreate, for: identity.userId)
        let uploadId = Hex.encode(SecureRandom.bytes(16))
        let expires = now.millis + Int64(state.settings.uploadExpiry.components.seconds) * 1000
        try await state.store.write { db in
            if metadata.level == .conversation, let conversation = metadata.conversationId,
               !(try await ConversationMembers.isMember(identity.userId, of: conversation, in: db)) {
                throw Problem.notFound("No such conversation.")
            }
            let taken = try await db.raw("""
                SELECT 1 AS one FROM vault_files WHERE id = \(bind: metadata.fileId)
                UNION ALL SELECT 1 AS one FROM vault_uploads WHERE file_id = \(bind: metadata.fileId)
                """).first()
            guard taken == nil else { throw tusProblem(409, "file-id-taken", "File id taken", "A file or upload with this fileId exists: pick another random id.") }
            guard try await VaultRepository.reserve(length, for: identity.userId, quota: state.settings.quota, in: db) else {
                let used = try await VaultRepository.used(by: identity.userId, in: db)
                throw tusProblem(413, "quota-exceeded", "Quota exceeded",
                                 "This upload needs \(length) bytes; \(max(0, state.settings.quota - used)) of your \(state.settings.quota) are free.")
            }
            // Counted after the reservation, which holds the member's usage row: two creations
            // at once cannot both see room for one more.
            let unfinished = try await VaultRepository.unfinished(of: identity.userId, now: now.millis, in: db)
            guard unfinished.count < state.settings.maxUnfinishedUploads else {
                let wait = max(1, ((unfinished.firstExpiry ?? now.millis) - now.millis + 999) / 1000)
                throw Problem(status: 429, slug: "too-many-uploads", title: "Too many unfinished uploads",
                              detail: "You have \(unfinished.count) unfinished uploads, the most this server keeps for one member: finish or cancel one, or wait until the oldest expires.",
                              headers: ["Tus-Resumable": Self.tusVersion, "Retry-After": String(wait)])
            }
            try await db.raw("""
                INSERT INTO vault_uploads (id, owner_id, file_id, length, upload_offset, level, conversation_id, meta, wrap, file_expires_at, created_at, expires_at)
                VALUES (\(bind: uploadId), \(bind: identity.userId), \(bind: metadata.fileId), \(bind: length), 0, \(bind: metadata.level.rawValue),
                        \(bind: metadata.conversationId), \(bind: Data(metadata.meta)), \(bind: Data(metadata.wrap)), \(bind: metadata.expiresAt),
                        \(bind: now.millis), \(bind: expires))
                """).run()
        }
        try await state.blobs.createUpload(uploadId, file: try VaultWire.fileId(metadata.fileId))
        await state.hashers.start(uploadId)
        var fields = headers(expires: expires)
        fields[.location] = Self.basePath + "/" + uploadId
        // creation-with-upload: the first bytes may come with the creation request.
        if request.headers[.contentType]?.lowercased() == Self.offsetContentType {
            let offset = try await state.leases.holding(uploadId, owner: identity.userId, busy: lockedProblem) { lease in
                guard let upload = try await state.store.read({ db in try await VaultRepository.upload(uploadId, in: db) }) else { throw Self.noSuchUpload }
                return try await receive(request, into: upload, lease: lease, channel: context.channel)
            }
            fields[Self.uploadOffset] = String(offset)
        }
        return Response(status: .created, headers: fields)
    }

    @Sendable func head(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        try requireTus(request)
        let upload = try await ownUpload(try context.parameters.require("id"), identity.userId)
        var fields = headers(offset: upload.offset, expires: upload.expiresAt)
        fields[Self.uploadLength] = String(upload.length)
        return Response(status: .ok, headers: fields)
    }

    @Sendable func patch(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        try requireTus(request)
        guard request.headers[.contentType]?.lowercased() == Self.offsetContentType else {
            throw tusProblem(415, "unsupported-media-type", "Unsupported media type", "Send the bytes as \(Self.offsetContentType).")
        }
        guard let offsetText = request.headers[Self.uploadOffset], let offset = Int64(offsetText), offset >= 0 else {
            throw tusProblem(400, "bad-request", "Bad request", "Upload-Offset must be the offset the bytes start at.")
        }
        let id: String = try context.parameters.require("id")
        _ = try await ownUpload(id, identity.userId)
        return try await state.leases.holding(id, owner: identity.userId, busy: lockedProblem) { lease in
            let upload = try await ownUpload(id, identity.userId)
            guard offset == upload.offset else {
                throw tusProblem(409, "offset-mismatch", "Offset mismatch", "The upload is at offset \(upload.offset), not \(offset): send HEAD and resume from there.")
            }
            let newOffset = try await receive(request, into: upload, lease: lease, channel: context.channel)
            return Response(status: .noContent, headers: headers(offset: newOffset, expires: newOffset == upload.length ? nil : upload.expiresAt))
        }
    }

    @Sendable func terminate(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        try requireTus(request)
        let id: String = try context.parameters.require("id")
        _ = try await ownUpload(id, identity.userId)
        return try await state.leases.holding(id, owner: identity.userId, busy: lockedProblem) { lease in
            let upload = try await ownUpload(id, identity.userId)
            try await state.store.write { db in
                guard try await VaultRepository.removeUpload(upload.id, token: lease.token, in: db) else { throw leaseLostProblem }
                try await VaultRepository.release(upload.length, for: upload.ownerId, in: db)
            }
            await state.hashers.forget(id)
            try? await state.blobs.deleteUpload(id)
            return Response(status: .noContent, headers: headers())
        }
    }

    // MARK: receiving bytes

    static let bodyReads = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 64 << 10, maximum: 1 << 20)

    static let noSuchUpload = Problem(status: 404, slug: "not-found", title: "Not found", detail: "No such upload (it may have finished or expired).",
                                      headers: ["Tus-Resumable": tusVersion])
    var lockedProblem: Problem { tusProblem(409, "upload-busy", "Upload busy", "Another request is writing this upload; retry after it ends.") }
    var leaseLostProblem: Problem {
        tusProblem(409, "upload-busy", "Upload busy", "This request stalled and another took over the upload; nothing of it was kept: send HEAD and resume.")
    }

    func ownUpload(_ id: String, _ userId: String) async throws -> VaultUploadRecord {
        guard id.count == 32, id.allSatisfy(\.isHexDigit) else { throw Self.noSuchUpload }
        let now = state.clock.now()
        guard let upload = try await state.store.read({ db in try await VaultRepository.upload(id, in: db) }),
              upload.ownerId == userId, upload.expiresAt > now.millis else { throw Self.noSuchUpload }
        return upload
    }

    /// Streams the request's body into the upload at its offset; returns the new offset, after
    /// finishing the file when the last byte arrived.
    func receive(_ request: Request, into upload: VaultUploadRecord, lease: UploadLease, channel: any Channel) async throws -> Int64 {
        let checksum = try requestChecksum(request)
        // Reads of up to 1 MiB while the body streams in (NIO's default stops at 64 KiB): each
        // read costs a trip through the HTTP decoder and the body sequence, whatever its size.
        // Back to the default afterwards, so an idle keep-alive connection keeps small buffers.
        try? await channel.setOption(ChannelOptions.recvAllocator, value: Self.bodyReads).get()
        defer { channel.setOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator()).whenComplete { _ in } }
        var hashing = UploadHashing(whole: await state.hashers.take(upload.id, at: upload.offset), request: checksum == nil ? nil : SHA256())
        let result = try await state.blobs.append(upload: upload.id, at: upload.offset, limit: upload.length - upload.offset,
                                                  body: LeasedBody(request.body, lease: lease), hashing: &hashing)
        if result.failure is BodyTooLong {
            try await state.blobs.truncateUpload(upload.id, to: upload.offset)
            throw tusProblem(413, "too-many-bytes", "Too many bytes", "The body goes past Upload-Length (\(upload.length) bytes).")
        }
        if let checksum {
            let digest = Array(hashing.request!.finalize())
            guard result.failure == nil, digest == checksum else {
                try await state.blobs.truncateUpload(upload.id, to: upload.offset)
                throw tusProblem(460, "checksum-mismatch", "Checksum mismatch", "The bytes do not match Upload-Checksum; nothing of this request was kept.")
            }
        }
        let newOffset = upload.offset + result.written
        if newOffset == upload.length, result.failure == nil {
            try await finish(upload, lease: lease, hash: hashing.whole.map { Array($0.finalize()) })
            return newOffset
        }
        if result.written > 0 {
            let moved = try await state.store.write { db in
                try await VaultRepository.advance(upload: upload.id, from: upload.offset, to: newOffset, token: lease.token, in: db)
            }
            guard moved else { throw leaseLostProblem }
        }
        if let whole = hashing.whole, result.failure == nil { await state.hashers.put(upload.id, whole, at: newOffset) }
        if let failure = result.failure { throw failure }
        return newOffset
    }

    /// SHA-256 from `Upload-Checksum: sha256 <base64>`, if given.
    func requestChecksum(_ request: Request) throws -> [UInt8]? {
        guard let header = request.headers[Self.uploadChecksum] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "sha256" else {
            throw tusProblem(400, "checksum-algorithm", "Unsupported checksum algorithm", "Upload-Checksum must be `sha256 <base64 digest>`.")
        }
        guard let digest = Data(base64Encoded: String(parts[1])), digest.count == 32 else {
            throw tusProblem(400, "bad-request", "Bad request", "The sha256 digest in Upload-Checksum must be 32 bytes of base64.")
        }
        return Array(digest)
    }

    /// The last byte arrived: the blob becomes the file (durable first), then the row, in one
    /// transaction with the upload's removal, then the owner hears of it.
    func finish(_ upload: VaultUploadRecord, lease: UploadLease, hash: [UInt8]?) async throws {
        let blobName = try VaultWire.fileId(upload.fileId)
        try await state.blobs.promote(upload: upload.id, toFile: blobName, length: upload.length)
        // Read back only when this process did not see every byte (the upload moved between replicas).
        let sha = if let hash { hash } else { try await state.blobs.hashFile(blobName) }
        let now = state.clock.now()
        let events = try await state.store.write { db in
            guard try await VaultRepository.removeUpload(upload.id, token: lease.token, in: db) else { throw leaseLostProblem }
            try await db.raw("""
                INSERT INTO vault_files (id, owner_id, level, conversation_id, meta, wrap, size, sha256, created_at, expires_at, accessed_at)
                VALUES (\(bind: upload.fileId), \(bind: upload.ownerId), \(bind: upload.level.rawValue), \(bind: upload.conversationId),
                        \(bind: Data(upload.meta)), \(bind: Data(upload.wrap)), \(bind: upload.length), \(bind: Data(sha)), \(bind: now.millis), \(bind: upload.fileExpiresAt),
                        \(bind: now.millis))
                """).run()
            let created = FileCreated(fileId: upload.fileId, size: upload.length, level: upload.level.rawValue, conversationId: upload.conversationId,
                                      sha256: Base64URL.encode(sha))
            return try await UserEventLog.append([NewUserEvent(userId: upload.ownerId, type: .vaultFileCreated, data: EventData.json(created))], at: now, in: db)
        }
        await state.hashers.forget(upload.id)
        try? await state.blobs.deleteUpload(upload.id)
        await state.events.publish(events)
    }

    struct FileCreated: Codable, Sendable {
        let fileId: String
        let size: Int64
        let level: String
        let conversationId: String?
        let sha256: String
    }
}

/// The fields of `Upload-Metadata` (tus: comma-separated `key base64(value)` pairs).
struct UploadMetadata: Sendable {
    let fileId: String
    let meta: [UInt8]
    let wrap: [UInt8]
    let level: VaultLevel
    let conversationId: String?
    let expiresAt: Int64

    static let allowedKeys: Set<String> = ["fileId", "meta", "wrap", "level", "conversationId", "expiresAt", "filename", "filetype"]

    init(header: String?) throws {
        var values: [String: String] = [:]
        for pair in (header ?? "").split(separator: ",") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
            guard let key = parts.first.map(String.init), !key.isEmpty, values[key] == nil else {
                throw Problem.invalidField("Upload-Metadata", "must be comma-separated `key base64value` pairs without repeats")
            }
            guard Self.allowedKeys.contains(key) else { throw Problem.invalidField("Upload-Metadata", "has an unknown key \(key)") }
            if parts.count == 2 {
                guard let data = Data(base64Encoded: String(parts[1])), let text = String(data: data, encoding: .utf8) else {
                    throw Problem.invalidField("Upload-Metadata", "the value of \(key) is not base64 of UTF-8 text")
                }
                values[key] = text
            } else {
                values[key] = ""
            }
        }
        guard let fileId = values["fileId"], let meta = values["meta"], let wrap = values["wrap"] else {
            throw Problem.invalidField("Upload-Metadata", "needs fileId, meta and wrap (PROTOCOL 9)")
        }
        try VaultWire.fileId(fileId)
        self.fileId = fileId
        self.meta = try VaultWire.meta(meta)
        self.wrap = try VaultWire.wrap(wrap)
        guard let level = VaultLevel(rawValue: values["level"] ?? "private") else {
            throw Problem.invalidField("level", "must be private, conversation or public")
        }
        self.level = level
        if level == .conversation {
            guard let conversation = values["conversationId"], Base64URL.decode(conversation)?.count == 32 else {
                throw Problem.invalidField("conversationId", "a conversation file needs its conversation's id")
            }
            self.conversationId = conversation
        } else {
            guard values["conversationId"] == nil else { throw Problem.invalidField("conversationId", "is only for conversation files") }
            self.conversationId = nil
        }
        if let text = values["expiresAt"] {
            guard let expiresAt = Int64(text) else { throw Problem.invalidField("expiresAt", "must be milliseconds since 1970, or 0") }
            self.expiresAt = expiresAt
        } else {
            self.expiresAt = 0
        }
    }
}

/// HTTP dates (RFC 9110 IMF-fixdate), for Upload-Expires.
enum HTTPDate {
    static func format(millis: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }
}
