import CircleCore
import CircleHTTP
import CircleStore
import CleanupCore
import CleanupStore
import Foundation
import HTTPTypes
import Hummingbird

/// `/api/v1/destruction`: destroying on purpose (ARCHITECTURE 8, docs/API.md "Destruction").
struct DestructionController: Sendable {
    let start: DestructionStart
    let store: any DatabaseStore
    let trustForwardedFor: Bool

    static let watchHeader = HTTPField.Name("Circle-Job-Token")!

    struct StartRequest: StrictDecodable, Sendable {
        let kind: String
        let conversationId: String?
        let confirm: String
        static let allowedKeys: Set<String> = ["kind", "conversationId", "confirm"]
    }

    struct Started: Codable, Sendable {
        let job: DestructionView
        /// Lets the requester follow the job after their sessions end (`Circle-Job-Token`).
        let watchToken: String
    }

    struct Jobs: Codable, Sendable { let jobs: [DestructionView] }

    struct ApproveRequest: StrictDecodable, Sendable {
        let confirm: String
        static let allowedKeys: Set<String> = ["confirm"]
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/destruction")
        group.post(use: create)
        group.get(use: list)
        group.post("{id}/approve", use: approve)
        group.delete("{id}", use: cancel)
        // Readable with the requester's session or the job's watch token.
        router.get("/api/v1/destruction/{id}", use: show)
    }

    @Sendable func create(request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeJSON(as: StartRequest.self, context: context)
        guard let kind = DestructionKind(rawValue: body.kind) else {
            throw Problem.invalidField("kind", "must be one of \(DestructionKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var conversationId: String?
        if kind == .conversation {
            guard let id = body.conversationId, (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw Problem.invalidField("conversationId", "name the conversation to destroy")
            }
            conversationId = id
        } else if body.conversationId != nil {
            throw Problem.invalidField("conversationId", "only a conversation's destruction names one")
        }
        let phrase = DestructionStart.phrase(kind)
        guard body.confirm.trimmingCharacters(in: .whitespaces).lowercased() == phrase else {
            throw Problem.invalidField("confirm", "type \"\(phrase)\" to confirm")
        }
        let (job, token) = try await start.start(DestructionStart.Request(
            kind: kind, conversationId: conversationId, identity: context.identity,
            ip: context.clientAddress(request, trustForwardedFor: trustForwardedFor),
            userAgent: String((request.headers[.userAgent] ?? "").prefix(512))
        ))
        var response = try JSONResponse(Started(job: DestructionView(job, at: start.clock.now()), watchToken: token), status: .accepted).response(from: request, context: context)
        response.headers[.location] = "/api/v1/destruction/\(job.id)"
        return response
    }

    /// A second admin approves the server's destruction (re-authenticated, with the typed
    /// phrase): its keys step has run when this answers.
    @Sendable func approve(request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let body = try await request.decodeJSON(as: ApproveRequest.self, context: context)
        let phrase = DestructionStart.phrase(.server)
        guard body.confirm.trimmingCharacters(in: .whitespaces).lowercased() == phrase else {
            throw Problem.invalidField("confirm", "type \"\(phrase)\" to confirm")
        }
        guard id.utf8.count <= 64 else { throw Problem.notFound("No such destruction job.") }
        let (job, token) = try await start.approve(
            id, identity: context.identity, ip: context.clientAddress(request, trustForwardedFor: trustForwardedFor),
            userAgent: String((request.headers[.userAgent] ?? "").prefix(512))
        )
        return try JSONResponse(Started(job: DestructionView(job, at: start.clock.now()), watchToken: token)).response(from: request, context: context)
    }

    /// An admin refuses a server's destruction waiting for approval.
    @Sendable func cancel(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<DestructionView> {
        let id = try context.parameters.require("id")
        guard id.utf8.count <= 64 else { throw Problem.notFound("No such destruction job.") }
        return JSONResponse(DestructionView(try await start.cancel(id, identity: context.identity), at: start.clock.now()))
    }

    /// The caller's latest jobs; an admin also sees any server destruction waiting or running.
    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Jobs> {
        let userId = context.identity.userId
        let now = start.clock.now()
        let jobs = try await store.read { db in
            let own = try await DestructionJobs.jobs(requestedBy: userId, limit: 50, in: db)
            guard try await ServerDestruction.isAdmin(userId, in: db) else { return own }
            let server = try await DestructionJobs.liveServerJobs(at: now, in: db).filter { job in !own.contains { $0.id == job.id } }
            return Array((server + own).sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }.prefix(50))
        }
        return JSONResponse(Jobs(jobs: jobs.map { DestructionView($0, at: now) }))
    }

    /// The job, to its requester (by session, or by the watch token the start or the approval
    /// returned) and, for the server's destruction, to every admin; anyone else gets the
    /// unknown-id 404.
    @Sendable func show(request: Request, context: CircleRequestContext) async throws -> JSONResponse<DestructionView> {
        let id = try context.parameters.require("id")
        let token = request.headers[Self.watchHeader]
        guard context.identity != nil || token != nil else { throw Problem.unauthorized() }
        guard id.utf8.count <= 64, let found = try await store.read({ db in try await DestructionJobs.job(id, in: db) }) else {
            throw Problem.notFound("No such destruction job.")
        }
        let byToken = token.map { SessionTokens.isWellFormed($0) && found.watchHashes.contains(SessionTokens.hash($0)) } ?? false
        var allowed = byToken || context.identity?.userId == found.job.requestedBy
        if !allowed, found.job.kind == .server, let userId = context.identity?.userId {
            allowed = try await store.read { db in try await ServerDestruction.isAdmin(userId, in: db) }
        }
        guard allowed else { throw Problem.notFound("No such destruction job.") }
        return JSONResponse(DestructionView(found.job, at: start.clock.now()))
    }
}
