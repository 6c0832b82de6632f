import CircleCore
import CircleHTTP
import CircleProtocol
import Foundation
import Hummingbird
import SignalingCore
import SignalingStore

/// `/api/v1/calls`: start, answer, decline, leave and relay signals for calls in the caller's
/// conversations, their history, and TURN credentials.
struct CallController: Sendable {
    let calls: CallService
    let turn: TurnCredentials
    let clock: any WallClock

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/calls")
        group.post(use: start)
        group.get(use: history)
        group.get("/active", use: active)
        group.get("/turn", use: iceServers)
        group.get("/:id", use: show)
        group.post("/:id/join", use: join)
        group.post("/:id/decline", use: decline)
        group.post("/:id/leave", use: leave)
        group.post("/:id/heartbeat", use: heartbeat)
        group.post("/:id/signal", use: signal)
    }

    struct List: Codable, Sendable {
        let calls: [CallView]
    }

    struct Start: StrictDecodable, Sendable {
        let conversationId: String
        let kind: String?
        let media: String
        let deviceId: String
        static let allowedKeys: Set<String> = ["conversationId", "kind", "media", "deviceId"]
    }

    /// 201 with a new call, or 200 with the conversation's call already ringing or active (the
    /// other side called at the same moment: join it).
    @Sendable func start(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<CallView> {
        let body = try await request.decodeJSON(as: Start.self, context: context)
        guard let conversation = ConversationID(text: body.conversationId) else {
            throw Problem.invalidField("conversationId", "must be a conversation id (43 characters of base64url)")
        }
        let kind = try body.kind.map { text in
            guard let kind = CallKind(rawValue: text) else { throw Problem.invalidField("kind", "must be call or broadcast") }
            return kind
        } ?? .call
        let start = CallStart(conversationId: conversation.text, kind: kind, media: try Self.media(body.media), deviceId: try Self.device(body.deviceId, field: "deviceId"))
        let (call, created) = try await calls.start(start, by: context.identity)
        return JSONResponse(call, status: created ? .created : .ok)
    }

    /// `?conversationId=...[&before=ms][&limit=n]`: the conversation's calls, newest first.
    @Sendable func history(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<List> {
        let query = request.uri.queryParameters
        guard let text = query["conversationId"].map(String.init), let conversation = ConversationID(text: text) else {
            throw Problem.invalidField("conversationId", "name the conversation: ?conversationId=<43 characters of base64url>")
        }
        let before = try query["before"].map { text -> Int64 in
            guard let value = Int64(String(text)), value > 0 else { throw Problem.invalidField("before", "must be a time in milliseconds") }
            return value
        } ?? 0
        let limit = try query["limit"].map { text -> Int in
            guard let value = Int(String(text)), (1...CallLimits.maximumHistoryPage).contains(value) else {
                throw Problem.invalidField("limit", "must be from 1 to \(CallLimits.maximumHistoryPage)")
            }
            return value
        } ?? 50
        return JSONResponse(List(calls: try await calls.history(of: conversation.text, before: before, limit: limit, for: context.identity.userId)))
    }

    @Sendable func active(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<List> {
        JSONResponse(List(calls: try await calls.live(for: context.identity.userId)))
    }

    @Sendable func iceServers(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<IceServers> {
        JSONResponse(turn.servers(for: context.identity.userId, at: clock.now()))
    }

    @Sendable func show(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<CallView> {
        JSONResponse(try await calls.view(try Self.callId(context), for: context.identity.userId))
    }

    struct Join: StrictDecodable, Sendable {
        let deviceId: String
        let media: String
        static let allowedKeys: Set<String> = ["deviceId", "media"]
    }

    @Sendable func join(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<CallView> {
        let id = try Self.callId(context)
        let body = try await request.decodeJSON(as: Join.self, context: context)
        return JSONResponse(try await calls.join(id, deviceId: try Self.device(body.deviceId, field: "deviceId"), media: try Self.media(body.media), by: context.identity))
    }

    struct Empty: StrictDecodable, Sendable {
        static let allowedKeys: Set<String> = []
    }

    @Sendable func decline(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<CallView> {
        let id = try Self.callId(context)
        _ = try await request.decodeOptionalJSON(as: Empty.self, context: context)
        return JSONResponse(try await calls.decline(id, by: context.identity))
    }

    struct Leave: StrictDecodable, Sendable {
        /// The device could not set the call up, or refused its signaling.
        let failed: Bool?
        static let allowedKeys: Set<String> = ["failed"]
    }

    @Sendable func leave(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<CallView> {
        let id = try Self.callId(context)
        let body = try await request.decodeOptionalJSON(as: Leave.self, context: context)
        return JSONResponse(try await calls.leave(id, failed: body?.failed == true, by: context.identity))
    }

    @Sendable func heartbeat(request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try Self.callId(context)
        try await calls.heartbeat(id, by: context.identity)
        return Response(status: .noContent)
    }

    struct Signal: StrictDecodable, Sendable {
        let fromDevice: String
        let toUser: String
        let toDevice: String
        let payload: String
        static let allowedKeys: Set<String> = ["fromDevice", "toUser", "toDevice", "payload"]
    }

    /// Relays a sealed signal to one device (202: handed to the bus; it is not stored).
    @Sendable func signal(request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try Self.callId(context)
        let body = try await request.decodeJSON(as: Signal.self, context: context)
        guard UserIdText.isValid(body.toUser) else { throw Problem.invalidField("toUser", "must be a user id") }
        guard let bytes = Base64URL.decode(body.payload) else { throw Problem.invalidField("payload", "must be base64url") }
        do {
            _ = try CallSignalWire(bytes: Array(bytes))
        } catch {
            throw Problem.invalidField("payload", "must be a sealed call signal (PROTOCOL 10): \(error)")
        }
        try await calls.relay(id, CallSignalRequest(fromDevice: try Self.device(body.fromDevice, field: "fromDevice"), toUser: body.toUser,
                                                    toDevice: try Self.device(body.toDevice, field: "toDevice"), payload: body.payload), by: context.identity)
        return Response(status: .accepted)
    }

    // MARK: Checks

    static func callId(_ context: AuthenticatedContext) throws -> String {
        let text = try context.parameters.require("id")
        guard let bytes = Base64URL.decode(text), bytes.count == 16 else { throw Problem.notFound("No such call.") }
        return text
    }

    static func device(_ text: String, field: String) throws -> String {
        guard let bytes = Base64URL.decode(text), bytes.count == 16 else { throw Problem.invalidField(field, "must be a device id (16 bytes, 22 characters of base64url)") }
        return text
    }

    static func media(_ text: String) throws -> CallMedia {
        guard let media = CallMedia(rawValue: text) else { throw Problem.invalidField("media", "must be audio or video") }
        return media
    }
}
