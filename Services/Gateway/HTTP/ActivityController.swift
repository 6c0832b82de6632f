import CircleActivity
import CircleCore
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import GatewayStore
import Hummingbird
import NIOCore

/// `/api/v1/activity`: the caller's own security activity (newest first, or after a sequence
/// number for checking the chain), its open alerts and their acknowledgement, an export; and
/// `/api/v1/admin/security`: the server's chain (failed sign-ins by address, throttles, admin
/// actions), for admins only.
struct ActivityController: Sendable {
    let state: GatewayState

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/activity")
        group.get(use: list)
        group.get("/alerts", use: alerts)
        group.post("/alerts/{seq}/acknowledge", use: acknowledge)
        group.get("/export", use: export)
        router.authenticated("/api/v1/admin").get("/security", use: security)
    }

    /// A chain position: an entry's number and hash (base64url).
    struct Position: Codable, Sendable, Equatable {
        let seq: Int64
        let hash: String
    }

    struct Page: Codable, Sendable {
        let entries: [ActivityView]
        /// Whether more entries lie beyond this page in the direction asked.
        let more: Bool
        /// The chain's newest entry, and where it starts (the hash before its oldest kept entry).
        let head: Position
        let anchor: Position
    }

    /// Newest first (`?before=N`), or oldest first after N (`?after=N`), at most `limit` (1–500).
    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Page> {
        let chain = context.identity.userId
        let limit = try Self.limit(request, default: 50, maximum: 500)
        let before = try Self.number(request, "before")
        let after = try Self.number(request, "after")
        guard before == nil || after == nil else { throw Problem.invalidField("after", "give before or after, not both") }
        let sealer = state.security.sealer
        return JSONResponse(try await state.store.read { db in
            let page: [ActivityEntry]
            if let after {
                page = try await ActivityLog.entries(chain, after: after, limit: limit + 1, in: db)
            } else {
                page = try await ActivityLog.page(chain, before: before, limit: limit + 1, in: db)
            }
            let head = try await ActivityLog.head(chain, in: db)
            return Page(entries: page.prefix(limit).map { ActivityView($0, sealer: sealer) }, more: page.count > limit,
                        head: Position(seq: head?.seq ?? 0, hash: Base64URL.encode(head?.hash ?? ActivityEntry.genesis)),
                        anchor: Position(seq: head?.anchorSeq ?? 0, hash: Base64URL.encode(head?.anchorHash ?? ActivityEntry.genesis)))
        })
    }

    struct Alerts: Codable, Sendable {
        let alerts: [ActivityView]
    }

    /// The caller's alerts not acknowledged yet, newest first.
    @Sendable func alerts(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Alerts> {
        let chain = context.identity.userId
        let sealer = state.security.sealer
        let open = try await state.store.read { db in try await ActivityLog.openAlerts(chain, in: db) }
        return JSONResponse(Alerts(alerts: open.map { ActivityView($0, sealer: sealer) }))
    }

    /// "This was me": records that the caller acknowledged one of their alerts.
    @Sendable func acknowledge(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        guard let seq = Int64(try context.parameters.require("seq")), seq > 0 else { throw Problem.notFound("No such alert.") }
        let ip = state.address(request, context)
        let userAgent = state.userAgent(request)
        let now = state.clock.now()
        let recorded = try await state.store.write { db in
            guard try await ActivityLog.openAlerts(identity.userId, in: db).contains(where: { $0.seq == seq }) else {
                throw Problem.notFound("No such alert (or it was acknowledged already).")
            }
            return try await state.record([
                ActivityItem(chain: identity.userId, kind: .alertAcknowledged, sessionId: identity.sessionId, ip: ip, userAgent: userAgent,
                             details: ["seq": String(seq)]),
            ], at: now, in: db)
        }
        await state.publish(recorded)
        return Response(status: .noContent)
    }

    /// The caller's whole chain, oldest first, as one JSON document (streamed page by page).
    @Sendable func export(request: Request, context: AuthenticatedContext) async throws -> Response {
        let chain = context.identity.userId
        let store = state.store
        let sealer = state.security.sealer
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.contentDisposition] = "attachment; filename=\"circle-activity.json\""
        headers[.cacheControl] = "no-store"
        let head = try await store.read { db in try await ActivityLog.head(chain, in: db) }
        let body = ResponseBody { writer in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var opening = ByteBuffer(string: "{\"chain\":")
            opening.writeBytes(try encoder.encode(chain))
            opening.writeString(",\"anchor\":")
            opening.writeBytes(try encoder.encode(Position(seq: head?.anchorSeq ?? 0, hash: Base64URL.encode(head?.anchorHash ?? ActivityEntry.genesis))))
            opening.writeString(",\"entries\":[")
            try await writer.write(opening)
            var after = head?.anchorSeq ?? 0
            var first = true
            while true {
                let from = after
                let page = try await store.read { db in try await ActivityLog.entries(chain, after: from, limit: 500, in: db) }
                var buffer = ByteBuffer()
                for entry in page {
                    if !first { buffer.writeString(",") }
                    first = false
                    buffer.writeBytes(try encoder.encode(ActivityView(entry, sealer: sealer)))
                    after = entry.seq
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
                if page.count < 500 { break }
            }
            try await writer.write(ByteBuffer(string: "]}"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    struct Security: Codable, Sendable {
        let entries: [ActivityView]
        let more: Bool
    }

    /// The server's chain, newest first (`?before=N`, `limit`), for admins; anyone else gets 404.
    @Sendable func security(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Security> {
        let identity = context.identity
        let limit = try Self.limit(request, default: 100, maximum: 500)
        let before = try Self.number(request, "before")
        let sealer = state.security.sealer
        return JSONResponse(try await state.store.read { db in
            guard try await AccountRepository.user(id: identity.userId, in: db)?.isAdmin == true else { throw Problem.notFound("Not found.") }
            let page = try await ActivityLog.page(ActivityLog.serverChain, before: before, limit: limit + 1, in: db)
            return Security(entries: page.prefix(limit).map { ActivityView($0, sealer: sealer) }, more: page.count > limit)
        })
    }

    static func limit(_ request: Request, default value: Int, maximum: Int) throws -> Int {
        guard let text = request.uri.queryParameters["limit"] else { return value }
        guard let limit = Int(text), (1...maximum).contains(limit) else { throw Problem.invalidField("limit", "must be from 1 to \(maximum)") }
        return limit
    }

    static func number(_ request: Request, _ name: String) throws -> Int64? {
        guard let text = request.uri.queryParameters[Substring(name)] else { return nil }
        guard let value = Int64(text), value >= 0 else { throw Problem.invalidField(name, "must be a whole number of at least 0") }
        return value
    }
}
