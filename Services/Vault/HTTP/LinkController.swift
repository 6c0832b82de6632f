import CircleActivity
import CircleCore
import CircleHTTP
import CircleProtocol
import CircleStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import SQLKit
import VaultCore
import VaultStore

/// Share links (PROTOCOL 9.5). The owner stores the file key wrapped under the link's key and
/// the hash of the link's access value; a holder of the link (and its password) opens it. A
/// revoked, expired or used-up link answers exactly like one that never existed.
struct LinkController: Sendable {
    let state: VaultState

    static let ticketHeader = HTTPField.Name("Circle-Link-Ticket")!
    static let noSuchLink = Problem.notFound("No such link: it may have expired, been used up, or been revoked.")
    static let noTicket = Problem.forbidden("A download needs a live ticket from opening the link (POST .../open), in Circle-Link-Ticket: this one is missing, unknown or expired. Open the link again.")
    static let ticketSpent = Problem.forbidden("This ticket has delivered the whole file already. Open the link again for another download (it counts against the link's limit).")

    /// How long a download ticket can start requests: long enough to resume a large download,
    /// short enough that a spent link's last ticket does not outlive it by much.
    static let ticketLifetimeMillis: Int64 = 60 * 60 * 1000

    /// What a ticket may deliver: one copy of the file, plus a quarter of it (at most 4 MiB) so a
    /// download resumes after a broken connection whose bytes in flight were counted as sent.
    /// Always less than two copies.
    static func ticketBudget(size: Int64) -> Int64 { size + min(size / 4, 4 << 20) }

    struct CreateLink: StrictDecodable, Sendable {
        let linkId: String
        let wrap: String
        let verifier: String
        let salt: String?
        let iterations: Int64?
        let expiresAt: Int64?
        let maxDownloads: Int64?
        static let allowedKeys: Set<String> = ["linkId", "wrap", "verifier", "salt", "iterations", "expiresAt", "maxDownloads"]
    }

    struct LinkUse: Codable, Sendable { let at: Int64; let outcome: String; let ip: String }
    /// Refused opens from one address: how many, the first and the last.
    struct LinkFailures: Codable, Sendable { let ip: String; let attempts: Int64; let firstAt: Int64; let lastAt: Int64 }

    /// Successful uses a link's view lists (newest first; every one is kept).
    static let usesShown = 500
    /// Addresses with refused opens a link's view lists (latest first); `failedAttempts` counts all.
    static let failuresShown = 100

    struct LinkView: Codable, Sendable {
        let id: String
        let fileId: String
        let hasPassword: Bool
        let expiresAt: Int64
        let maxDownloads: Int64
        let downloads: Int64
        let createdAt: Int64
        let revokedAt: Int64?
        let live: Bool
        let uses: [LinkUse]
        let failures: [LinkFailures]
        let failedAttempts: Int64
    }

    struct LinkList: Codable, Sendable { let links: [LinkView] }

    /// What anyone with the link id learns before proving access: how to derive the access value.
    struct LinkParameters: Codable, Sendable {
        let linkId: String
        let hasPassword: Bool
        let salt: String?
        let iterations: Int64?
    }

    struct OpenLink: StrictDecodable, Sendable {
        let access: String
        static let allowedKeys: Set<String> = ["access"]
    }

    struct OpenedLink: Codable, Sendable {
        let linkId: String
        let fileId: String
        let meta: String
        let wrap: String
        let size: Int64
        let sha256: String
        let expiresAt: Int64
        let downloadsLeft: Int64?
        /// Presented in Circle-Link-Ticket by content requests: the first one counts a download.
        let ticket: String
        let ticketExpiresAt: Int64
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let owner = router.authenticated("/api/v1/vault")
        owner.post("/files/{id}/links", use: create)
        owner.get("/files/{id}/links", use: list)
        owner.delete("/links/{linkId}", use: revoke)
        let visitor = router.group("/api/v1/vault/links").add(middleware: ServerLockdownMiddleware(store: state.store, startedAt: state.clock.now()))
        visitor.get("/{linkId}", use: parameters)
        visitor.post("/{linkId}/open", use: open)
        visitor.get("/{linkId}/content", use: content)
    }

    // MARK: the owner's side

    @Sendable func create(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let fileId: String = try context.parameters.require("id")
        let body = try await request.decodeJSON(as: CreateLink.self, context: context)
        let linkId = try VaultWire.linkId(body.linkId)
        let wrap = try VaultWire.wrap(body.wrap)
        let verifier = try VaultWire.bytes(body.verifier, count: 32, field: "verifier")
        let salt = try body.salt.map { try VaultWire.bytes($0, count: VaultFormat.linkSaltSize, field: "salt") }
        let iterations = body.iterations ?? 0
        if salt != nil {
            guard iterations >= Int64(VaultFormat.linkIterations), iterations <= 10_000_000 else {
                throw Problem.invalidField("iterations", "a password needs \(VaultFormat.linkIterations) to 10,000,000 PBKDF2 iterations")
            }
        } else {
            guard body.iterations == nil else { throw Problem.invalidField("iterations", "is only for links with a password (give salt too)") }
        }
        let now = state.clock.now()
        let expiresAt = body.expiresAt ?? 0
        try state.checkExpiry(expiresAt, field: "expiresAt", now: now)
        let maxDownloads = body.maxDownloads ?? 0
        guard maxDownloads >= 0, maxDownloads <= 1_000_000 else { throw Problem.invalidField("maxDownloads", "must be 0 (no limit) to 1,000,000") }
        let id = Base64URL.encode(linkId)
        try await state.rateLimiter.check(.linkCreate, for: identity.userId)
        let ip = context.clientAddress(request, trustForwardedFor: state.settings.trustForwardedFor)
        let userAgent = VaultState.userAgent(request)
        let (view, recorded) = try await state.store.write { db in
            let file = try await state.ownFile(fileId, by: identity.userId, now: now, in: db)
            if try await VaultRepository.link(id, in: db) != nil { throw Problem.conflict("This linkId is taken: pick another random one.") }
            if file.level != .public {
                // A conversation's file stays readable in its conversation (VaultState.readableFile).
                try await db.raw("UPDATE vault_files SET level = 'public' WHERE id = \(bind: file.id)").run()
            }
            try await db.raw("""
                INSERT INTO vault_links (id, file_id, owner_id, wrap, verifier, salt, iterations, expires_at, max_downloads, downloads, created_at)
                VALUES (\(bind: id), \(bind: file.id), \(bind: identity.userId), \(bind: Data(wrap)), \(bind: Data(verifier)), \(bind: salt.map { Data($0) }), \(bind: iterations),
                        \(bind: expiresAt), \(bind: maxDownloads), 0, \(bind: now.millis))
                """).run()
            let recorded = try await state.record([
                ActivityItem(chain: identity.userId, kind: .linkCreated, sessionId: identity.sessionId, ip: ip, userAgent: userAgent,
                             details: ["linkId": id, "fileId": file.id, "password": salt == nil ? "no" : "yes", "maxDownloads": String(maxDownloads)]),
            ], at: now, in: db)
            return (try await Self.view(id, now: now, in: db), recorded)
        }
        await state.publish(recorded)
        return try JSONResponse(view, status: .created).response(from: request, context: context)
    }

    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<LinkList> {
        let identity = context.identity
        let fileId: String = try context.parameters.require("id")
        let now = state.clock.now()
        return JSONResponse(try await state.store.read { db in
            let file = try await state.ownFile(fileId, by: identity.userId, now: now, in: db)
            let ids = try await db.raw("SELECT id FROM vault_links WHERE file_id = \(bind: file.id) ORDER BY created_at").all()
                .map { try $0.decode(column: "id", as: String.self) }
            var links: [LinkView] = []
            for id in ids { links.append(try await Self.view(id, now: now, in: db)) }
            return LinkList(links: links)
        })
    }

    static func view(_ id: String, now: Timestamp, in db: any SQLDatabase) async throws -> LinkView {
        guard let link = try await VaultRepository.link(id, in: db) else { throw noSuchLink }
        let uses = try await db.raw("SELECT at, outcome, ip FROM vault_link_uses WHERE link_id = \(bind: id) ORDER BY at DESC LIMIT \(bind: Self.usesShown)").all().map {
            LinkUse(at: try $0.decode(column: "at", as: Int64.self), outcome: try $0.decode(column: "outcome", as: String.self), ip: try $0.decode(column: "ip", as: String.self))
        }
        let failures = try await db.raw("""
            SELECT ip, attempts, first_at, last_at FROM vault_link_failures WHERE link_id = \(bind: id) ORDER BY last_at DESC LIMIT \(bind: Self.failuresShown)
            """).all().map {
            LinkFailures(ip: try $0.decode(column: "ip", as: String.self), attempts: try $0.decode(column: "attempts", as: Int64.self),
                         firstAt: try $0.decode(column: "first_at", as: Int64.self), lastAt: try $0.decode(column: "last_at", as: Int64.self))
        }
        let failedAttempts = try await db.raw("SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) AS n FROM vault_link_failures WHERE link_id = \(bind: id)").first()?
            .decode(column: "n", as: Int64.self) ?? 0
        return LinkView(id: link.id, fileId: link.fileId, hasPassword: link.salt != nil, expiresAt: link.expiresAt, maxDownloads: link.maxDownloads,
                        downloads: link.downloads, createdAt: link.createdAt, revokedAt: link.revokedAt, live: link.isLive(at: now), uses: uses,
                        failures: failures, failedAttempts: failedAttempts)
    }

    /// Revoking deletes the link's wrap and verifier: nothing the server keeps opens it again.
    @Sendable func revoke(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let id: String = try context.parameters.require("linkId")
        _ = try VaultWire.linkId(id)
        let now = state.clock.now()
        let ip = context.clientAddress(request, trustForwardedFor: state.settings.trustForwardedFor)
        let userAgent = VaultState.userAgent(request)
        let recorded = try await state.store.write { db in
            guard let link = try await VaultRepository.link(id, in: db), link.ownerId == identity.userId else { throw Self.noSuchLink }
            try await db.raw("UPDATE vault_links SET wrap = NULL, verifier = NULL, revoked_at = COALESCE(revoked_at, \(bind: now.millis)) WHERE id = \(bind: id)").run()
            return try await state.record([
                ActivityItem(chain: identity.userId, kind: .linkRevoked, sessionId: identity.sessionId, ip: ip, userAgent: userAgent,
                             details: ["linkId": id, "fileId": link.fileId]),
            ], at: now, in: db)
        }
        await state.publish(recorded)
        return Response(status: .noContent)
    }

    // MARK: the holder's side (no account needed)

    func liveLink(_ id: String, in db: any SQLDatabase, now: Timestamp) async throws -> (VaultLinkRecord, VaultFileRecord) {
        guard (try? VaultWire.linkId(id)) != nil, let link = try await VaultRepository.link(id, in: db), link.isLive(at: now),
              let file = try await VaultRepository.file(link.fileId, in: db), !file.isExpired(at: now), file.level == .public else {
            throw Self.noSuchLink
        }
        return (link, file)
    }

    @Sendable func parameters(request: Request, context: CircleRequestContext) async throws -> JSONResponse<LinkParameters> {
        let id: String = try context.parameters.require("linkId")
        let now = state.clock.now()
        let (link, _) = try await state.store.read { db in try await liveLink(id, in: db, now: now) }
        return JSONResponse(LinkParameters(linkId: link.id, hasPassword: link.salt != nil, salt: link.salt.map(Base64URL.encode),
                                           iterations: link.salt == nil ? nil : link.iterations))
    }

    /// Checks the access value in constant time and issues a download ticket; every attempt is
    /// recorded for the owner (refusals counted per address). Attempts are throttled per link
    /// and per address (`VaultState.linkOpenLimits`), counted before the check, so guesses cost
    /// waits; a right value gives its attempt back.
    func authorize(_ id: String, access text: String?, request: Request, context: some CircleContext) async throws -> (VaultLinkRecord, VaultFileRecord, ticket: [UInt8], expiresAt: Int64) {
        guard (try? VaultWire.linkId(id)) != nil else { throw Self.noSuchLink }
        let now = state.clock.now()
        let ip = context.clientAddress(request, trustForwardedFor: state.settings.trustForwardedFor)
        let attempt = try await state.linkThrottle.admit(VaultState.linkOpenLimits(link: id, address: ip))
        let access = text.flatMap(Base64URL.decode)
        // A refusal is recorded and committed before it is answered (throwing inside the
        // transaction would roll the record back).
        let userAgent = VaultState.userAgent(request)
        let ticket = SecureRandom.bytes(32), ticketExpiresAt = now.millis + Self.ticketLifetimeMillis
        let (granted, recorded): ((VaultLinkRecord, VaultFileRecord)?, RecordedActivity) = try await state.store.write { db in
            let (link, file) = try await liveLink(id, in: db, now: now)
            let details = ["linkId": link.id, "fileId": file.id]
            guard let access, access.count == 32, let verifier = link.verifier,
                  ConstantTime.equal(Array(SHA256.hash(data: access)), verifier) else {
                try await VaultRepository.recordFailure(link: link.id, ip: ip, at: now, in: db)
                let recorded = try await state.record([
                    ActivityItem(chain: link.ownerId, kind: .linkPasswordFailed, ip: ip, userAgent: userAgent, details: details),
                ], at: now, in: db)
                return (nil, recorded)
            }
            try await db.raw("""
                INSERT INTO vault_link_tickets (id, link_id, expires_at, counted, budget)
                VALUES (\(bind: Self.ticketKey(ticket)), \(bind: link.id), \(bind: ticketExpiresAt), 0, \(bind: Self.ticketBudget(size: file.size)))
                """).run()
            try await VaultRepository.recordUse(link: link.id, outcome: "open", ip: ip, at: now, in: db)
            let item = ActivityItem(chain: link.ownerId, kind: .linkOpened, ip: ip, userAgent: userAgent, details: details.merging(["use": "open"]) { a, _ in a })
            return ((link, file), try await state.record([item], at: now, in: db))
        }
        await state.publish(recorded)
        guard let granted else { throw Problem.forbidden("The link's key or password is wrong.") }
        await state.linkThrottle.succeeded(attempt)
        return (granted.0, granted.1, ticket, ticketExpiresAt)
    }

    /// What the database keeps of a ticket: its hash, so a copy of the database grants nothing.
    static func ticketKey(_ ticket: [UInt8]) -> String { Base64URL.encode(Array(SHA256.hash(data: ticket))) }

    @Sendable func open(request: Request, context: CircleRequestContext) async throws -> JSONResponse<OpenedLink> {
        let id: String = try context.parameters.require("linkId")
        let body = try await request.decodeJSON(as: OpenLink.self, context: context)
        let (link, file, ticket, ticketExpiresAt) = try await authorize(id, access: body.access, request: request, context: context)
        return JSONResponse(OpenedLink(linkId: link.id, fileId: file.id, meta: Base64URL.encode(file.meta), wrap: Base64URL.encode(link.wrap ?? []),
                                       size: file.size, sha256: Base64URL.encode(file.sha256), expiresAt: link.expiresAt,
                                       downloadsLeft: link.maxDownloads == 0 ? nil : max(0, link.maxDownloads - link.downloads),
                                       ticket: Base64URL.encode(ticket), ticketExpiresAt: ticketExpiresAt))
    }

    /// The ciphertext, for a holder presenting a ticket from `open`. The first request under a
    /// ticket counts one download (refused once the link has none left); every request draws its
    /// length from the ticket's budget (`ticketBudget`: less than two copies of the file), and
    /// bytes a broken connection never took are refunded, so a download resumes with ranges but
    /// no sequence of requests, ranged or not, obtains more copies than the limit.
    @Sendable func content(request: Request, context: CircleRequestContext) async throws -> Response {
        let id: String = try context.parameters.require("linkId")
        guard (try? VaultWire.linkId(id)) != nil else { throw Self.noSuchLink }
        guard let ticket = request.headers[Self.ticketHeader].flatMap(Base64URL.decode), ticket.count == 32 else { throw Self.noTicket }
        let key = Self.ticketKey(Array(ticket))
        let now = state.clock.now()
        let ip = context.clientAddress(request, trustForwardedFor: state.settings.trustForwardedFor)
        let userAgent = VaultState.userAgent(request)
        let rangeHeader = request.headers[.range]
        let (file, range, recorded): (VaultFileRecord, ClosedRange<Int64>?, RecordedActivity) = try await state.store.write { db in
            // Revoked or expired links and files stop their tickets; a link used up by this
            // ticket's own download does not (the spent-link sweep waits for its tickets).
            guard let link = try await VaultRepository.link(id, in: db), link.revokedAt == nil, link.wrap != nil,
                  link.expiresAt == 0 || link.expiresAt > now.millis,
                  let file = try await VaultRepository.file(link.fileId, in: db), !file.isExpired(at: now), file.level == .public else {
                throw Self.noSuchLink
            }
            guard let row = try await db.raw("""
                SELECT counted FROM vault_link_tickets WHERE id = \(bind: key) AND link_id = \(bind: link.id) AND expires_at > \(bind: now.millis)
                """).first() else { throw Self.noTicket }
            let range = try ContentResponse.range(rangeHeader, size: file.size)
            let length = range.map { $0.count } ?? Int(file.size)
            var item = ActivityItem(chain: link.ownerId, kind: .linkOpened, ip: ip, userAgent: userAgent, details: ["linkId": link.id, "fileId": file.id])
            let first = try row.decode(column: "counted", as: Int64.self) == 0
            if first {
                // Counted only while downloads are left, in one conditional statement.
                guard let counted = try await db.raw("""
                    UPDATE vault_links SET downloads = downloads + 1 WHERE id = \(bind: link.id) AND revoked_at IS NULL
                    AND (max_downloads = 0 OR downloads < max_downloads) RETURNING downloads
                    """).first() else { throw Self.noSuchLink }
                try await db.raw("UPDATE vault_link_tickets SET counted = 1 WHERE id = \(bind: key)").run()
                // The owner is alerted once, by the download that takes the link past half its limit.
                let downloads = try counted.decode(column: "downloads", as: Int64.self)
                if link.maxDownloads > 0, downloads * 2 > link.maxDownloads, (downloads - 1) * 2 <= link.maxDownloads {
                    item.alert = true
                    item.details["downloads"] = "\(downloads) of \(link.maxDownloads)"
                }
            }
            guard try await db.raw("""
                UPDATE vault_link_tickets SET budget = budget - \(bind: Int64(length)) WHERE id = \(bind: key) AND budget >= \(bind: Int64(length)) RETURNING budget
                """).first() != nil else { throw Self.ticketSpent }
            let outcome = first ? "download" : "resume"
            item.details["use"] = outcome
            try await VaultRepository.recordUse(link: link.id, outcome: outcome, ip: ip, at: now, in: db)
            try await VaultRepository.touch(file.id, at: now, in: db)
            return (file, range, try await state.record([item], at: now, in: db))
        }
        await state.publish(recorded)
        let length = Int64(range.map { $0.count } ?? Int(file.size))
        let store = state.store, logger = state.logger
        let response = try await ContentResponse.make(file: file, range: range, context: context, blobs: state.blobs)
        return response.countingBody { written in
            let unsent = length - written
            guard unsent > 0 else { return }
            do {
                try await store.write { db in
                    try await db.raw("UPDATE vault_link_tickets SET budget = budget + \(bind: unsent) WHERE id = \(bind: key)").run()
                }
            } catch {
                logger.warning("a download ticket's refund failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
