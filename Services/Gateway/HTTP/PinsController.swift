import CircleCore
import CircleHTTP
import CircleStore
import Foundation
import GatewayCore
import GatewayStore
import Hummingbird
import SQLKit

/// `/api/v1/account/pins`: the caller's encrypted pins blob (PROTOCOL 3), so a new device does not
/// relearn contacts' keys from the server. The server stores it opaque (the client encrypts it
/// under a key from the vault master key, bound to the user and version) and only keeps versions
/// in order: a write must name the next version, so two devices never overwrite each other
/// unnoticed.
struct PinsController: Sendable {
    let state: GatewayState

    static let maximumBlob = 256 * 1024

    struct Pins: Codable, Sendable { let version: Int64; let blob: String? }
    struct PutPins: StrictDecodable, Sendable {
        let version: Int64
        let blob: String
        static let allowedKeys: Set<String> = ["version", "blob"]
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/account/pins")
        group.get(use: get)
        group.put(use: put)
    }

    @Sendable func get(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Pins> {
        let identity = context.identity
        let row = try await state.store.read { db in
            try await db.raw("SELECT version, blob FROM pins WHERE user_id = \(bind: identity.userId)").first()
        }
        guard let row else { return JSONResponse(Pins(version: 0, blob: nil)) }
        return JSONResponse(Pins(version: try row.decode(column: "version", as: Int64.self),
                                 blob: Base64URL.encode(try row.decode(column: "blob", as: Data.self))))
    }

    @Sendable func put(request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let body = try await request.decodeJSON(as: PutPins.self, context: context)
        guard let blob = Base64URL.decode(body.blob), !blob.isEmpty, blob.count <= Self.maximumBlob else {
            throw Problem.invalidField("blob", "must be 1 to \(Self.maximumBlob) bytes of unpadded base64url")
        }
        guard body.version >= 1 else { throw Problem.invalidField("version", "must be at least 1") }
        let now = state.clock.now()
        try await state.store.write { db in
            // One conditional statement: of two devices writing the same next version, one wins
            // and the other is told to merge.
            let written: (any SQLRow)?
            if body.version == 1 {
                written = try await db.raw("""
                    INSERT INTO pins (user_id, version, blob, updated_at) VALUES (\(bind: identity.userId), 1, \(bind: blob), \(bind: now.millis))
                    ON CONFLICT (user_id) DO NOTHING RETURNING version
                    """).first()
            } else {
                written = try await db.raw("""
                    UPDATE pins SET version = \(bind: body.version), blob = \(bind: blob), updated_at = \(bind: now.millis)
                    WHERE user_id = \(bind: identity.userId) AND version = \(bind: body.version - 1) RETURNING version
                    """).first()
            }
            guard written != nil else {
                let current = try await db.raw("SELECT version FROM pins WHERE user_id = \(bind: identity.userId)").first()?.decode(column: "version", as: Int64.self) ?? 0
                throw Problem(status: 409, slug: "version-conflict", title: "Version conflict",
                              detail: "The pins are at version \(current): fetch them, merge, and write version \(current + 1).")
            }
        }
        return Response(status: .noContent)
    }
}
