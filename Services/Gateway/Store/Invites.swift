import CircleCore
import CircleStore
import Foundation

/// Invitations (ARCHITECTURE 11): single-use, expiring codes that admit one registration. Only a
/// hash of the code is stored; the code itself appears once, in the printed link.
public enum Invites {
    /// Creates an invite and returns the link to hand to the invitee.
    public static func create(
        store: any DatabaseStore, publicURL: String, grantsAdmin: Bool = false,
        validFor: Duration = .seconds(7 * 86400), now: Timestamp = .now()
    ) async throws -> String {
        let code = Base64URL.encode(SecureRandom.bytes(18))
        let expires = now.adding(seconds: validFor.components.seconds)
        try await store.write { db in
            try await AccountRepository.createInvite(code: code, grantsAdmin: grantsAdmin, expiresAt: expires, at: now, in: db)
        }
        return link(publicURL: publicURL, code: code)
    }

    /// The invite link: the code rides in the fragment, which browsers never send to servers.
    public static func link(publicURL: String, code: String) -> String {
        "\(publicURL)/#/invite/\(code)"
    }

    /// On a server with no members yet, an admin invite for the first one; nil otherwise.
    public static func firstAdminInviteIfEmpty(store: any DatabaseStore, publicURL: String) async throws -> String? {
        let members = try await store.read { db in try await AccountRepository.userCount(in: db) }
        guard members == 0 else { return nil }
        return try await create(store: store, publicURL: publicURL, grantsAdmin: true, validFor: .seconds(86400))
    }
}
