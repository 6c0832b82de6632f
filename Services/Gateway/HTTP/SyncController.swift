import CircleCore
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import GatewayStore
import Hummingbird
import NIOCore

/// `GET /api/v1/sync?since=N&limit=M`: the caller's events after N, the same ones the socket
/// delivers; 410 `resync-required` when N is older than the retention.
struct SyncController: Sendable {
    let state: GatewayState

    func addRoutes(to router: Router<CircleRequestContext>) {
        router.get("/api/v1/sync", use: sync)
    }

    @Sendable func sync(request: Request, context: CircleRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard let sinceText = request.uri.queryParameters["since"], let since = Int64(sinceText), since >= 0 else {
            throw Problem.invalidField("since", "must be a whole number of at least 0")
        }
        var limit = 500
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(text), (1...1000).contains(value) else { throw Problem.invalidField("limit", "must be from 1 to 1000") }
            limit = value
        }
        let pageSize = limit
        let (page, head) = try await state.store.read { db in
            (try await UserEventLog.events(for: identity.userId, since: since, limit: pageSize, in: db),
             try await UserEventLog.lastSeq(for: identity.userId, in: db))
        }
        switch page {
        case .resyncRequired:
            throw Problem.gone("resync-required", "Events after \(since) are no longer kept (or never existed); reload through the REST API and resume from lastSeq \(head).")
        case .events(let events, let more):
            let body = "{\"events\":[" + events.map(\.frameJSON).joined(separator: ",") + "],\"lastSeq\":\(more ? events.last!.seq : head),\"more\":\(more)}"
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
    }
}
