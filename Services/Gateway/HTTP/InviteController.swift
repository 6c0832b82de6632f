import CircleActivity
import CircleCore
import CircleHTTP
import Foundation
import GatewayCore
import GatewayStore
import HTTPTypes
import Hummingbird

/// Invitations from the browser: admins create (with a note and an expiry), list (who used which)
/// and revoke them; a registration page checks its invite before anyone fills in the form.
/// Anyone but an admin gets 404 from the admin routes, as for `/api/v1/admin/security`.
struct InviteController {
    let state: GatewayState

    /// At most this many invites are listed, newest first.
    static let listLimit = 200
    static let maxNote = 120

    func addRoutes(to router: Router<CircleRequestContext>) {
        router.get("/api/v1/auth/invites/{code}", use: check)
        let admin = router.authenticated("/api/v1/admin/invites")
        admin.get(use: list)
        admin.post(use: create)
        admin.delete("/{id}", use: revoke)
    }

    struct Check: Codable, Sendable {
        let state: InviteState
        var expiresAt: Int64?
    }

    /// What an invite is now (usable, used, expired, revoked or unknown) and, when usable, until
    /// when: nothing about who made or used it.
    @Sendable func check(request: Request, context: CircleRequestContext) async throws -> JSONResponse<Check> {
        try await state.rateLimiter.check(.inviteCheck, for: state.address(request, context))
        let code = try context.parameters.require("code")
        guard code.count <= 64, Base64URL.decode(code) != nil else { return JSONResponse(Check(state: .unknown)) }
        let now = state.clock.now()
        let found = try await state.store.read { db in try await AccountRepository.inviteState(code: code, at: now, in: db) }
        return JSONResponse(Check(state: found.state, expiresAt: found.state == .usable ? found.expiresAt : nil))
    }

    struct CreateRequest: StrictDecodable, Sendable {
        static let allowedKeys: Set<String> = ["note", "validForHours", "grantsAdmin"]
        let note: String?
        /// Hours the invite stays usable: 1 to 2160 (90 days); 168 (a week) when absent.
        let validForHours: Int?
        let grantsAdmin: Bool?
    }

    struct Created: Codable, Sendable {
        let invite: InviteView
        /// The link to hand over: shown once, never stored (only its hash is).
        let link: String
    }

    struct InviteView: Codable, Sendable {
        let id: String
        let state: InviteState
        let note: String
        let grantsAdmin: Bool
        let createdAt: Int64
        let expiresAt: Int64
        var usedAt: Int64?
        var usedBy: UsedBy?
        var revokedAt: Int64?
    }

    struct UsedBy: Codable, Sendable {
        let userId: String
        var username: String?
        var displayName: String?
    }

    struct Listed: Codable, Sendable {
        let invites: [InviteView]
    }

    @Sendable func create(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let body = try await request.decodeJSON(as: CreateRequest.self, context: context)
        try await requireAdmin(identity.userId)
        let note = try AccountRules.readableText(body.note ?? "", field: "note", maxCharacters: Self.maxNote)
        let hours = body.validForHours ?? 168
        guard (1...2160).contains(hours) else { throw Problem.invalidField("validForHours", "must be 1 to 2160 (90 days)") }
        try await state.rateLimiter.check(.inviteCreate, for: identity.userId)
        let code = Base64URL.encode(SecureRandom.bytes(18))
        let id = Base64URL.encode(SecureRandom.bytes(16))
        let now = state.clock.now()
        let expires = now.adding(seconds: Int64(hours) * 3600)
        let grantsAdmin = body.grantsAdmin ?? false
        let recorded = try await state.store.write { db in
            try await AccountRepository.createInvite(code: code, id: id, grantsAdmin: grantsAdmin, note: note, createdBy: identity.userId,
                                                     expiresAt: expires, at: now, in: db)
            return try await state.record([ActivityItem(
                chain: ActivityLog.serverChain, kind: .inviteCreated, ip: state.address(request, context), userAgent: state.userAgent(request),
                details: ["admin": grantsAdmin ? "yes" : "no", "validFor": "\(hours)h", "by": identity.userId])], at: now, in: db)
        }
        await state.publish(recorded)
        let view = InviteView(id: id, state: .usable, note: note, grantsAdmin: grantsAdmin, createdAt: now.millis, expiresAt: expires.millis)
        return try JSONResponse(Created(invite: view, link: Invites.link(publicURL: state.settings.publicURL, code: code)), status: .created)
            .response(from: request, context: context)
    }

    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Listed> {
        try await requireAdmin(context.identity.userId)
        let now = state.clock.now()
        let invites = try await state.store.read { db in try await AccountRepository.invites(limit: Self.listLimit, in: db) }
        return JSONResponse(Listed(invites: invites.map { invite in
            var view = InviteView(id: invite.id, state: invite.state(at: now), note: invite.note, grantsAdmin: invite.grantsAdmin,
                                  createdAt: invite.createdAt, expiresAt: invite.expiresAt)
            view.usedAt = invite.usedAt
            view.revokedAt = invite.revokedAt
            view.usedBy = invite.usedBy.map { UsedBy(userId: $0, username: invite.usedByName, displayName: invite.usedByDisplayName) }
            return view
        }))
    }

    /// Revokes an unused invite (204, also when it had expired); a used one gets 409, an unknown
    /// id 404.
    @Sendable func revoke(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let id = try context.parameters.require("id")
        try await requireAdmin(identity.userId)
        guard id.count <= 64, Base64URL.decode(id) != nil else { throw Problem.notFound("No such invite.") }
        let now = state.clock.now()
        let (before, recorded) = try await state.store.write { db -> (InviteState?, RecordedActivity?) in
            let before = try await AccountRepository.revokeInvite(id: id, at: now, in: db)
            guard before == .usable || before == .expired else { return (before, nil) }
            let recorded = try await state.record([ActivityItem(
                chain: ActivityLog.serverChain, kind: .inviteRevoked, ip: state.address(request, context), userAgent: state.userAgent(request),
                details: ["invite": id, "by": identity.userId])], at: now, in: db)
            return (before, recorded)
        }
        switch before {
        case nil: throw Problem.notFound("No such invite.")
        case .used?: throw Problem(status: 409, slug: "invite-used", title: "Invite used", detail: "This invite was already used; revoking it would change nothing.")
        default:
            if let recorded { await state.publish(recorded) }
            return Response(status: .noContent)
        }
    }

    func requireAdmin(_ userId: String) async throws {
        guard try await state.store.read({ db in try await AccountRepository.user(id: userId, in: db)?.isAdmin == true }) else {
            throw Problem.notFound("Not found.")
        }
    }
}
