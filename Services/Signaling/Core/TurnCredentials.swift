import CircleConfig
import CircleCore
import Crypto
import Foundation

/// ICE servers for a call (`GET /api/v1/calls/turn`), in the shape `RTCPeerConnection` takes.
package struct IceServers: Codable, Sendable, Equatable {
    package struct Server: Codable, Sendable, Equatable {
        package let urls: [String]
        package let username: String?
        package let credential: String?
    }

    package let iceServers: [Server]
    /// When the TURN credentials stop working (milliseconds since 1970); nil without TURN.
    package let expiresAt: Int64?
    /// How long they last, in seconds (0 without TURN).
    package let ttl: Int64
}

/// TURN credentials by the TURN REST API (draft-uberti-behave-turn-rest, coturn's
/// `use-auth-secret`): username `expiry:userId`, password base64(HMAC-SHA1(secret, username)).
/// coturn checks both and refuses the username once `expiry` (seconds since 1970) has passed.
package struct TurnCredentials: Sendable {
    let settings: CallSettings

    package init(settings: CallSettings) {
        self.settings = settings
    }

    /// The password for a username.
    package static func password(for username: String, secret: [UInt8]) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(username.utf8), using: SymmetricKey(data: secret))
        return Data(mac).base64EncodedString()
    }

    /// The ICE servers for `userId` at `now`: STUN addresses as configured, TURN addresses with
    /// credentials that last `turn.ttl`.
    package func servers(for userId: String, at now: Timestamp) -> IceServers {
        let stun = settings.turnURLs.filter { $0.hasPrefix("stun") }
        var servers: [IceServers.Server] = stun.isEmpty ? [] : [.init(urls: stun, username: nil, credential: nil)]
        guard let secret = settings.turnSecret else { return IceServers(iceServers: servers, expiresAt: nil, ttl: 0) }
        let ttl = Int64(settings.turnTTL.components.seconds)
        let expiry = now.millis / 1000 + ttl
        let username = "\(expiry):\(userId)"
        let turn = settings.turnURLs.filter { $0.hasPrefix("turn") }
        servers.append(.init(urls: turn, username: username, credential: Self.password(for: username, secret: secret)))
        return IceServers(iceServers: servers, expiresAt: expiry * 1000, ttl: ttl)
    }
}
