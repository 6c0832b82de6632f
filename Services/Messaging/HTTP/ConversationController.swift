import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Foundation
import GatewayStore
import Hummingbird
import MessagingCore
import MessagingStore
import SQLKit

/// `/api/v1/conversations`: create, list, read, and the signed membership chain (PROTOCOL 5).
///
/// The server checks every op with the same rules as clients (CircleKit's `MembershipChain`):
/// signed by the caller, on top of the head, allowed by the caller's role; an added member's
/// fingerprint must match the directory's key. Clients check again against their pins.
struct ConversationController: Sendable {
    let state: MessagingState

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/conversations")
        group.post("", use: create)
        group.get("", use: list)
        group.get("/{id}", use: detail)
        group.get("/{id}/ops", use: ops)
        group.post("/{id}/ops", use: appendOp)
        group.put("/{id}/preferences", use: preferences)
    }

    @Sendable func create(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<ConversationCreated> {
        let identity = context.identity
        let body = try await request.decodeJSON(as: CreateConversationRequest.self, context: context)
        let genesis = try body.genesis.signed(field: "genesis")
        let ops = try (body.ops ?? []).enumerated().map { try $0.element.signed(field: "ops[\($0.offset)]") }
        guard ops.count <= state.limits.maximumCreationOps else { throw Problem.invalidField("ops", "at most \(state.limits.maximumCreationOps) ops") }
        let parsed = try ([genesis] + ops).map { signed in
            do { return try MembershipOp(bytes: signed.bytes) } catch { throw OpProblems.map(error) }
        }
        guard parsed.allSatisfy({ $0.actor == identity.userId }) else {
            throw Problem.forbidden("Every op of a new conversation is signed by its creator, the caller.")
        }
        let now = state.clock.now()
        for (index, op) in parsed.enumerated() { try OpProblems.checkTime(op, now: now, field: index == 0 ? "genesis" : "ops[\(index - 1)]") }
        let (created, events) = try await state.store.write { db in
            let named = Set(parsed.map(\.actor) + parsed.map(\.target).filter { !$0.isEmpty })
            let keys = try await AccountDirectory.keys(for: named, in: db)
            guard let creatorKey = keys[identity.userId]?.identityKey else { throw Problem.unauthorized() }
            var chain: MembershipChain
            do {
                chain = try MembershipChain(genesis: genesis, creatorIdentity: creatorKey)
                for (signed, op) in zip(ops, parsed.dropFirst()) {
                    try Self.checkTarget(op, keys: keys)
                    try chain.append(signed, actorIdentity: creatorKey)
                }
            } catch {
                throw OpProblems.map(error)
            }
            let id = Base64URL.encode(chain.convId)
            if try await db.raw("SELECT 1 AS one FROM conversations WHERE id = \(bind: id)").first() != nil {
                throw Problem.conflict("A conversation with this genesis already exists.")
            }
            _ = try await ConversationRepository.insertConversation(chain, at: now, in: db)
            try await ConversationRepository.store(chain, newOpsFrom: 0, previous: [:], at: now, in: db)
            let created = ConversationCreated(conversationId: id, head: Int64(chain.head), epoch: WireBytes.encode(chain.epoch))
            let data = EventData.json(created)
            let events = try await UserEventLog.append(
                chain.members.keys.sorted().map { NewUserEvent(userId: $0, type: .conversationCreated, data: data) }, at: now, in: db)
            return (created, events)
        }
        // Gateways forget the audience before members hear of the change and start typing.
        await state.events.announce([.conversation(created.conversationId)])
        await state.events.publish(events)
        return JSONResponse(created, status: .created)
    }

    /// An op naming a target must name the key the directory publishes for them.
    static func checkTarget(_ op: MembershipOp, keys: [String: DirectoryKeys]) throws {
        guard op.action == .add || op.action == .role || op.action == .remove else { return }
        guard let key = keys[op.target] else {
            throw Problem(status: 422, slug: "refused-op", title: "Refused op", detail: "The op names a user who does not exist.")
        }
        if op.action == .add, IdentityFingerprint.of(key.identityKey) != op.targetFingerprint {
            throw Problem(status: 422, slug: "refused-op", title: "Refused op", detail: "The op's fingerprint is not the target's published identity key.")
        }
    }

    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<ConversationList> {
        let identity = context.identity
        let now = state.clock.now()
        let conversations = try await state.store.read { db in try await ConversationRepository.list(for: identity.userId, at: now, in: db) }
        return JSONResponse(ConversationList(conversations: conversations))
    }

    @Sendable func detail(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<ConversationDetail> {
        let identity = context.identity
        let id = try context.parameters.require("id")
        let detail = try await state.store.read { db in
            let (conversation, me) = try await state.membership(id, identity.userId, in: db)
            let members = try await ConversationRepository.members(of: id, in: db)
            let readSeq = try await ConversationRepository.readSeq(id, userId: identity.userId, in: db)
            return ConversationDetail(
                id: id, head: conversation.headN, epoch: WireBytes.encode(conversation.epoch), settings: conversation.settings.view,
                members: members.map { MemberView(userId: $0.userId, role: $0.role.name, fingerprint: WireBytes.encode($0.fingerprint)) },
                lastSeq: conversation.lastSeq, readSeq: readSeq, readReceipts: me.receipts)
        }
        return JSONResponse(detail)
    }

    @Sendable func ops(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<OpList> {
        let identity = context.identity
        let id = try context.parameters.require("id")
        var after: Int64 = -1
        if let text = request.uri.queryParameters["after"] {
            guard let value = Int64(text), value >= -1 else { throw Problem.invalidField("after", "must be a whole number of at least -1") }
            after = value
        }
        let start = after
        let list = try await state.store.read { db in
            let (conversation, _) = try await state.membership(id, identity.userId, in: db)
            let ops = try await ConversationRepository.ops(id, after: start, limit: 1000, in: db)
            return OpList(ops: ops.map { OpView(conversationId: id, n: $0.n, op: WireBytes.encode($0.op.bytes), signature: WireBytes.encode($0.op.signature), epoch: WireBytes.encode($0.op.hash)) },
                          head: conversation.headN)
        }
        return JSONResponse(list)
    }

    @Sendable func appendOp(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<OpView> {
        let identity = context.identity
        let id = try context.parameters.require("id")
        let body = try await request.decodeJSON(as: AppendOpRequest.self, context: context)
        let signed = try WireOp(op: body.op, signature: body.signature).signed(field: "body")
        let op: MembershipOp
        do { op = try MembershipOp(bytes: signed.bytes) } catch { throw OpProblems.map(error) }
        let now = state.clock.now()
        try OpProblems.checkTime(op, now: now)
        let (view, events) = try await state.store.write { db in
            _ = try await state.membership(id, identity.userId, in: db)
            guard op.actor == identity.userId else { throw Problem.forbidden("An op is signed by the member who sends it.") }
            guard let locked = try await ConversationRepository.lock(id, at: now, in: db) else { throw Problem.notFound("No such conversation.") }
            var chain = try await ConversationRepository.chain(locked, in: db)
            let previous = chain.members
            let keys = try await AccountDirectory.keys(for: [op.actor, op.target].filter { !$0.isEmpty }, in: db)
            guard let actorKey = keys[op.actor]?.identityKey else { throw Problem.unauthorized() }
            do {
                try Self.checkTarget(op, keys: keys)
                try chain.append(signed, actorIdentity: actorKey)
            } catch {
                throw OpProblems.map(error)
            }
            try await ConversationRepository.store(chain, newOpsFrom: chain.head, previous: previous, at: now, in: db)
            let view = OpView(conversationId: id, n: Int64(chain.head), op: body.op, signature: body.signature, epoch: WireBytes.encode(chain.epoch))
            let data = EventData.json(ConversationChanged(conversationId: id, n: view.n, epoch: view.epoch))
            let told = Set(previous.keys).union(chain.members.keys).sorted()
            let events = try await UserEventLog.append(told.map { NewUserEvent(userId: $0, type: .conversationOp, data: data) }, at: now, in: db)
            return (view, events)
        }
        // Only these change who the members are; gateways forget the audience before members
        // hear of the change.
        if [.add, .remove, .leave].contains(op.action) { await state.events.announce([.conversation(id)]) }
        await state.events.publish(events)
        return JSONResponse(view, status: .created)
    }

    /// The caller's own preference for read receipts in one conversation: off means they
    /// neither send nor see receipts there (ARCHITECTURE 7).
    @Sendable func preferences(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let id = try context.parameters.require("id")
        let body = try await request.decodeJSON(as: PreferencesRequest.self, context: context)
        try await state.store.write { db in
            _ = try await state.membership(id, identity.userId, in: db)
            try await ConversationRepository.setReceipts(id, userId: identity.userId, enabled: body.readReceipts, in: db)
        }
        return Response(status: .noContent)
    }
}
