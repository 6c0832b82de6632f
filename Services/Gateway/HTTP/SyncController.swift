import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import Hummingbird
import NIOCore

/// `GET /api/v1/sync?since=N&limit=M`: the caller's stored events after N, the same frames the
/// socket's catch-up delivers; 410 `resync-required` when N is older than the retention.
/// Messages are not events: each conversation's are read from its own cursor
/// (`GET /api/v1/conversations/{id}/messages?after=`).
///
/// The answer is streamed page by page, so its memory is bounded whatever the limit.
struct SyncController: Sendable {
    let state: GatewayState

    /// Events read from the log per query while streaming.
    static let pageSize = 100

    func addRoutes(to router: Router<CircleRequestContext>) {
        router.authenticated().get("/api/v1/sync", use: sync)
    }

    @Sendable func sync(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        guard let sinceText = request.uri.queryParameters["since"], let since = Int64(sinceText), since >= 0 else {
            throw Problem.invalidField("since", "must be a whole number of at least 0")
        }
        var limit = 500
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(text), (1...1000).contains(value) else { throw Problem.invalidField("limit", "must be from 1 to 1000") }
            limit = value
        }
        let userId = identity.userId
        let store = state.store
        let total = limit
        @Sendable func page(after seq: Int64, upTo count: Int) async throws -> UserEventPage {
            try await store.read { db in try await UserEventLog.events(for: userId, since: seq, limit: min(count, Self.pageSize), in: db) }
        }
        // The first page decides between an answer and 410, before anything is sent.
        guard case .events(let firstEvents, let firstMore) = try await page(after: since, upTo: total) else {
            let head = try await store.read { db in try await UserEventLog.lastSeq(for: userId, in: db) }
            throw Problem.gone("resync-required", "Events after \(since) are no longer kept (or never existed); reload through the REST API and resume from lastSeq \(head).")
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "{\"events\":["))
            var events = firstEvents
            var more = firstMore
            var sent = 0
            var last = since
            while true {
                for event in events {
                    var buffer = ByteBuffer()
                    if sent > 0 { buffer.writeString(",") }
                    var frame = try EventFrame(stored: event).body
                    buffer.writeBuffer(&frame)
                    try await writer.write(buffer)
                    sent += 1
                    last = event.seq
                }
                guard more, sent < total else { break }
                let next = try await page(after: last, upTo: total - sent)
                // Pruned while streaming: end here; the client resumes from `lastSeq` and hears 410.
                guard case .events(let nextEvents, let nextMore) = next else {
                    more = true
                    break
                }
                events = nextEvents
                more = nextMore
            }
            // `lastSeq` is the last event sent (or `since`): resuming from it never skips an event
            // appended while this answer was read.
            try await writer.write(ByteBuffer(string: "],\"lastSeq\":\(last),\"more\":\(more)}"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
