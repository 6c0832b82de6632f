import CircleCore
import CircleHTTP
import Foundation
import Hummingbird
import PresenceCore
import PresenceStore

/// `/api/v1/presence`: members' presence as the caller may see it, and the caller's own choices.
struct PresenceController: Sendable {
    let presence: PresenceService
    let clock: any WallClock

    /// The most members one request asks about.
    static let maximumUsers = 500
    /// Custom status text, in characters (and bytes, for the storage).
    static let maximumStatus = 80
    static let maximumStatusBytes = 320
    /// A custom status lives at most this long (a year).
    static let maximumStatusLifetime: Int64 = 365 * 86_400_000

    func addRoutes(to router: Router<CircleRequestContext>) {
        let group = router.authenticated("/api/v1/presence")
        group.get(use: list)
        group.get("/contacts", use: contacts)
        group.put(use: update)
    }

    struct List: Codable, Sendable {
        let presence: [PresenceView]
    }

    /// `?users=a,b,c`: each as the caller may see them (anyone who shares no conversation with the
    /// caller, or does not exist, is offline and blank).
    @Sendable func list(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<List> {
        guard let text = request.uri.queryParameters["users"], !text.isEmpty else {
            throw Problem.invalidField("users", "name at least one user id: ?users=id1,id2")
        }
        var ids: [String] = []
        for part in text.split(separator: ",") {
            let id = String(part)
            guard id.utf8.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                throw Problem.invalidField("users", "must be user ids separated by commas")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        guard ids.count <= Self.maximumUsers else { throw Problem.invalidField("users", "at most \(Self.maximumUsers) at once") }
        return JSONResponse(List(presence: try await presence.views(of: ids, for: context.identity.userId)))
    }

    struct Contacts: Codable, Sendable {
        let own: PresenceView
        let contacts: [PresenceView]
    }

    /// The caller's own presence and every contact's: what a client loads when its socket is ready.
    @Sendable func contacts(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<Contacts> {
        let (own, contacts) = try await presence.contacts(of: context.identity.userId)
        return JSONResponse(Contacts(own: own, contacts: contacts))
    }

    struct Update: StrictDecodable, Sendable {
        struct Status: StrictDecodable, Sendable {
            let emoji: String?
            let text: String?
            let expiresAt: Int64?
            static let allowedKeys: Set<String> = ["emoji", "text", "expiresAt"]
        }

        let state: String?
        /// A new custom status, or null to clear it.
        let status: Status?
        let clearStatus: Bool?
        let hideLastSeen: Bool?
        let typing: Bool?
        static let allowedKeys: Set<String> = ["state", "status", "clearStatus", "hideLastSeen", "typing"]
    }

    @Sendable func update(request: Request, context: AuthenticatedContext) async throws -> JSONResponse<PresenceView> {
        let body = try await request.decodeJSON(as: Update.self, context: context)
        var change = PresenceChange()
        if let text = body.state {
            guard let state = PresenceState(rawValue: text) else {
                throw Problem.invalidField("state", "must be online, away, busy or invisible")
            }
            change.state = state
        }
        if let status = body.status {
            guard body.clearStatus != true else { throw Problem.invalidField("clearStatus", "give a status or clear it, not both") }
            change.status = try Self.check(status, now: clock.now())
        }
        change.clearStatus = body.clearStatus == true
        change.hideLastSeen = body.hideLastSeen
        change.typing = body.typing
        return JSONResponse(try await presence.update(context.identity.userId, change))
    }

    /// A custom status: one emoji (or none) and up to 80 characters of text, without control or
    /// direction-override characters, normalised; an expiry in the future within a year, or none.
    static func check(_ status: Update.Status, now: Timestamp) throws -> (emoji: String, text: String, expiresAt: Int64) {
        let emoji = (status.emoji ?? "").precomposedStringWithCanonicalMapping
        let text = (status.text ?? "").trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
        guard !emoji.isEmpty || !text.isEmpty else { throw Problem.invalidField("status", "needs an emoji or text (or use clearStatus)") }
        guard emoji.count <= 1, emoji.utf8.count <= 32, emoji.unicodeScalars.allSatisfy({ $0.properties.isEmoji || $0.properties.isJoinControl || $0.value == 0xFE0F }) else {
            throw Problem.invalidField("status.emoji", "must be one emoji")
        }
        guard text.count <= maximumStatus, text.utf8.count <= maximumStatusBytes else {
            throw Problem.invalidField("status.text", "must be at most \(maximumStatus) characters")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || (0x202A...0x202E).contains($0.value) || (0x2066...0x2069).contains($0.value) }) else {
            throw Problem.invalidField("status.text", "must not hold control or text-direction characters")
        }
        let expiresAt = status.expiresAt ?? 0
        guard expiresAt == 0 || (expiresAt > now.millis && expiresAt <= now.millis + maximumStatusLifetime) else {
            throw Problem.invalidField("status.expiresAt", "must be 0 (never) or a time in milliseconds within the next year")
        }
        return (emoji, text, expiresAt)
    }
}
