import CircleActivity
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Foundation
import HTTPTypes
import Hummingbird
import MessagingStore
import NIOCore
import SQLKit
import Synchronization
import VaultCore
import VaultStore

/// `/api/v1/vault/files`: the caller's files and the conversation files they may read. Nobody
/// else learns that a file exists: every refusal is the same 404.
struct FileController: Sendable {
    let state: VaultState

    struct FileView: Codable, Sendable {
        let id: String
        let level: String
        let conversationId: String?
        let meta: String
        /// The owner's wrapped file key; only the owner gets it.
        let wrap: String?
        let size: Int64
        let sha256: String
        let createdAt: Int64
        let expiresAt: Int64
        let mine: Bool
    }

    /// A file's level or expiry changed (the event names the file; its encrypted metadata stays
    /// out of the log).
    struct FileChanged: Codable, Sendable {
        let fileId: String
        let level: String
        let conversationId: String?
        let expiresAt: Int64
    }

    struct FileList: Codable, Sendable {
        let files: [FileView]
        let used: Int64
        let quota: Int64
    }

    struct ChangeFile: StrictDecodable, Sendable {
        let level: String?
        let conversationId: String?
        let expiresAt: Int64?
        static let allowedKeys: Set<String> = ["level", "conversationId", "expiresAt"]
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/vault/files")
        group.get(use: list)
        group.get("/{id}", use: get)
        group.get("/{id}/content", use: content)
        group.patch("/{id}", use: change)
        group.delete("/{id}", use: delete)
    }

    static func view(_ file: VaultFileRecord, for userId: String) -> FileView {
        FileView(id: file.id, level: file.level.rawValue, conversationId: file.conversationId, meta: Base64URL.encode(file.meta),
                 wrap: file.ownerId == userId ? Base64URL.encode(file.wrap) : nil, size: file.size, sha256: Base64URL.encode(file.sha256),
                 createdAt: file.createdAt, expiresAt: file.expiresAt, mine: file.ownerId == userId)
    }

    /// The caller's own files, or with `?conversation=ID` the files of a conversation they are in.
    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<FileList> {
        let identity = context.identity
        let now = state.clock.now()
        let conversation = request.uri.queryParameters.get("conversation")
        return JSONResponse(try await state.store.read { db in
            let rows: [any SQLRow]
            if let conversation {
                guard try await ConversationMembers.isMember(identity.userId, of: conversation, in: db) else { throw Problem.notFound("No such conversation.") }
                rows = try await db.raw("""
                    SELECT * FROM vault_files WHERE conversation_id = \(bind: conversation) AND level <> 'private'
                    AND (expires_at = 0 OR expires_at > \(bind: now.millis)) ORDER BY created_at DESC LIMIT 1000
                    """).all()
            } else {
                rows = try await db.raw("""
                    SELECT * FROM vault_files WHERE owner_id = \(bind: identity.userId)
                    AND (expires_at = 0 OR expires_at > \(bind: now.millis)) ORDER BY created_at DESC LIMIT 1000
                    """).all()
            }
            let files = try rows.map { Self.view(try VaultRepository.decodeFile($0), for: identity.userId) }
            return FileList(files: files, used: try await VaultRepository.used(by: identity.userId, in: db), quota: state.settings.quota)
        })
    }

    @Sendable func get(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<FileView> {
        let identity = context.identity
        let id: String = try context.parameters.require("id")
        let file = try await state.store.read { db in try await state.readableFile(id, by: identity.userId, now: state.clock.now(), in: db) }
        return JSONResponse(Self.view(file, for: identity.userId))
    }

    @Sendable func content(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let id: String = try context.parameters.require("id")
        let now = state.clock.now()
        let file = try await state.store.read { db in try await state.readableFile(id, by: identity.userId, now: now, in: db) }
        if file.accessedAt < now.millis - VaultRepository.accessResolution { try await state.store.write { db in try await VaultRepository.touch(file.id, at: now, in: db) } }
        return try await ContentResponse.make(file: file, request: request, context: context, blobs: state.blobs)
    }

    /// The owner changes the level (making a file private or moving it out of a conversation
    /// revokes its links), the conversation, or the expiry.
    @Sendable func change(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<FileView> {
        let identity = context.identity
        let id: String = try context.parameters.require("id")
        let body = try await request.decodeJSON(as: ChangeFile.self, context: context)
        let now = state.clock.now()
        let level = try body.level.map { text in
            guard let level = VaultLevel(rawValue: text) else { throw Problem.invalidField("level", "must be private, conversation or public") }
            return level
        }
        if let expiresAt = body.expiresAt { try state.checkExpiry(expiresAt, field: "expiresAt", now: now) }
        let (file, events) = try await state.store.write { db in
            var file = try await state.ownFile(id, by: identity.userId, now: now, in: db)
            if let level { file.level = level }
            switch file.level {
            case .conversation:
                guard let conversation = body.conversationId ?? file.conversationId, Base64URL.decode(conversation)?.count == 32,
                      try await ConversationMembers.isMember(identity.userId, of: conversation, in: db) else {
                    throw Problem.invalidField("conversationId", "a conversation file needs a conversation you are a member of")
                }
                file.conversationId = conversation
            case .public:
                // A linked file may also be in one conversation (given, or the one it is in).
                if let conversation = body.conversationId {
                    guard Base64URL.decode(conversation)?.count == 32, try await ConversationMembers.isMember(identity.userId, of: conversation, in: db) else {
                        throw Problem.invalidField("conversationId", "must be a conversation you are a member of")
                    }
                    file.conversationId = conversation
                }
            case .private:
                guard body.conversationId == nil else { throw Problem.invalidField("conversationId", "is not for private files") }
                file.conversationId = nil
            }
            if let expiresAt = body.expiresAt { file.expiresAt = expiresAt }
            if file.level != .public { try await VaultRepository.revokeLinks(ofFile: file.id, at: now, in: db) }
            try await db.raw("""
                UPDATE vault_files SET level = \(bind: file.level.rawValue), conversation_id = \(bind: file.conversationId), expires_at = \(bind: file.expiresAt)
                WHERE id = \(bind: file.id)
                """).run()
            let events = try await UserEventLog.append([NewUserEvent(userId: identity.userId, type: .vaultFileChanged,
                                                                     data: EventData.json(FileChanged(fileId: file.id, level: file.level.rawValue, conversationId: file.conversationId,
                                                                                                      expiresAt: file.expiresAt)))], at: now, in: db)
            return (file, events)
        }
        await state.events.publish(events)
        return JSONResponse(Self.view(file, for: identity.userId))
    }

    @Sendable func delete(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let id: String = try context.parameters.require("id")
        let now = state.clock.now()
        let ip = context.clientAddress(request, trustForwardedFor: state.settings.trustForwardedFor)
        let userAgent = VaultState.userAgent(request)
        let (file, events, recorded) = try await state.store.write { db in
            let file = try await state.ownFile(id, by: identity.userId, now: now, in: db)
            let recorded = try await state.record([
                ActivityItem(chain: identity.userId, kind: .fileDeleted, sessionId: identity.sessionId, ip: ip, userAgent: userAgent, details: ["fileId": file.id]),
            ], at: now, in: db)
            try await VaultRepository.deleteFile(file, at: now, in: db)
            let events = try await UserEventLog.append([NewUserEvent(userId: identity.userId, type: .vaultFileDeleted,
                                                                     data: EventData.json(["fileId": file.id]))], at: now, in: db)
            return (file, events, recorded)
        }
        try? await state.blobs.deleteFile(file.blobName)
        await state.events.publish(events)
        await state.publish(recorded)
        return Response(status: .noContent)
    }
}

/// A file's ciphertext as a download: the whole file or one `Range` (resumable downloads).
enum ContentResponse {
    static func make(file: VaultFileRecord, request: Request, context: some CircleContext, blobs: any BlobStore) async throws -> Response {
        try await make(file: file, range: try range(request.headers[.range], size: file.size), context: context, blobs: blobs)
    }

    /// The one range a `Range` header asks for, nil for the whole file; 416 for one outside it.
    static func range(_ header: String?, size: Int64) throws -> ClosedRange<Int64>? {
        guard let header else { return nil }
        guard let range = parse(header, size: size) else {
            throw Problem(status: 416, slug: "range-not-satisfiable", title: "Range not satisfiable",
                          detail: "Ask for one range of bytes within 0-\(max(0, size - 1)).", headers: ["Content-Range": "bytes */\(size)"])
        }
        return range
    }

    /// The whole file (`range` nil) or the range, with its headers.
    static func make(file: VaultFileRecord, range: ClosedRange<Int64>?, context: some CircleContext, blobs: any BlobStore) async throws -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/octet-stream"
        fields[.acceptRanges] = "bytes"
        fields[.eTag] = "\"\(Hex.encode(file.sha256))\""
        fields[.contentDisposition] = "attachment"
        guard let range else {
            fields[.contentLength] = String(file.size)
            return Response(status: .ok, headers: fields, body: try await blobs.read(file: file.blobName, range: nil, context: context))
        }
        fields[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(file.size)"
        fields[.contentLength] = String(range.count)
        return Response(status: .partialContent, headers: fields, body: try await blobs.read(file: file.blobName, range: range, context: context))
    }

    /// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range within the file.
    static func parse(_ header: String, size: Int64) -> ClosedRange<Int64>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return nil }
            return max(0, size - suffix)...(size - 1)
        }
        guard let start = Int64(first), start >= 0, start < size else { return nil }
        if last.isEmpty { return start...(size - 1) }
        guard let end = Int64(last), end >= start else { return nil }
        return start...min(end, size - 1)
    }
}

extension Response {
    /// The same response, calling `done` with how many body bytes were handed to the connection
    /// once the body is written or has failed (a client that went away took fewer).
    func countingBody(_ done: @escaping @Sendable (Int64) async -> Void) -> Response {
        var response = self
        let body = self.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            let counter = ByteCounter()
            do {
                try await body.write(CountingBodyWriter(base: writer, counter: counter))
            } catch {
                await done(counter.value)
                throw error
            }
            await done(counter.value)
        }
        return response
    }
}

/// Counts bytes before handing them on, so a write that fails midway counts as sent.
private struct CountingBodyWriter: ResponseBodyWriter {
    var base: any ResponseBodyWriter
    let counter: ByteCounter

    mutating func write(_ buffer: ByteBuffer) async throws {
        counter.add(buffer.readableBytes)
        try await base.write(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        try await base.finish(trailingHeaders)
    }
}

private final class ByteCounter: Sendable {
    private let total = Atomic<Int64>(0)
    func add(_ count: Int) { total.add(Int64(count), ordering: .relaxed) }
    var value: Int64 { total.load(ordering: .relaxed) }
}
