import CircleCore
import CircleCrypto
import Crypto
import Foundation

/// A member as a test client makes them: real keys, a random authKey, opaque bundles.
///
/// The server never sees a password, so tests need no key derivation: the authKey a real
/// client derives from its password is, to the server, just 32 bytes.
public struct TestAccount: Sendable {
    public let userId: String
    public let username: String
    public let displayName: String
    public let authKey: [UInt8]
    public let salt: [UInt8]
    public let recoveryAuthKey: [UInt8]
    public let bundle: [UInt8]
    public let recoveryBundle: [UInt8]
    public let identity: Curve25519.Signing.PrivateKey
    public let agreement: Curve25519.KeyAgreement.PrivateKey

    public init(username: String, displayName: String? = nil) {
        self.userId = UUID().uuidString.lowercased()
        self.username = username
        self.displayName = displayName ?? username.capitalized
        self.authKey = SecureRandom.bytes(32)
        self.salt = SecureRandom.bytes(32)
        self.recoveryAuthKey = SecureRandom.bytes(32)
        self.bundle = SecureRandom.bytes(200)
        self.recoveryBundle = SecureRandom.bytes(200)
        self.identity = Curve25519.Signing.PrivateKey()
        self.agreement = Curve25519.KeyAgreement.PrivateKey()
    }

    public var kxCert: [UInt8] {
        Array(try! identity.signature(for: CircleLabels.kxCertMessage(userId: userId, x25519Public: Array(agreement.publicKey.rawRepresentation))))
    }

    /// The body of `POST /api/v1/auth/register`, with fields replaceable for negative tests.
    public func registration(invite: String?, overriding: [String: Any] = [:], removing: [String] = []) -> String {
        var body: [String: Any] = [
            "userId": userId, "username": username, "displayName": displayName,
            "authKey": Base64URL.encode(authKey), "salt": Base64URL.encode(salt),
            "bundle": Base64URL.encode(bundle), "recoveryBundle": Base64URL.encode(recoveryBundle),
            "recoveryAuthKey": Base64URL.encode(recoveryAuthKey),
            "identityKey": Base64URL.encode(identity.publicKey.rawRepresentation),
            "x25519Key": Base64URL.encode(agreement.publicKey.rawRepresentation),
            "kxCert": Base64URL.encode(kxCert), "deviceLabel": "test device",
        ]
        if let invite { body["invite"] = invite }
        for (key, value) in overriding { body[key] = value }
        for key in removing { body[key] = nil }
        return String(decoding: try! JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self)
    }

    public func login(authKey: [UInt8]? = nil, device: String = "test device") -> String {
        "{\"username\":\"\(username)\",\"authKey\":\"\(Base64URL.encode(authKey ?? self.authKey))\",\"deviceLabel\":\"\(device)\"}"
    }
}

/// A client of a running server over real HTTP.
public struct APIClient: Sendable {
    public let baseURL: String

    public init(baseURL: String) { self.baseURL = baseURL }

    public var socketURL: String { baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/events" }

    @discardableResult
    public func call(_ method: String, _ path: String, json: String? = nil, token: String? = nil, headers: [String: String] = [:]) async throws -> HTTPProbe.Reply {
        var all = headers
        if json != nil, all["Content-Type"] == nil { all["Content-Type"] = "application/json" }
        if let token { all["Authorization"] = "Bearer \(token)" }
        return try await HTTPProbe.request(method, baseURL + path, body: json, headers: all)
    }

    /// A request with a binary body (vault uploads).
    @discardableResult
    public func send(_ method: String, _ path: String, bytes: [UInt8]?, token: String? = nil, headers: [String: String] = [:]) async throws -> HTTPProbe.Reply {
        var all = headers
        if let token { all["Authorization"] = "Bearer \(token)" }
        return try await HTTPProbe.request(method, baseURL + path, bytes: bytes, headers: all)
    }

    /// Registers and returns the session token.
    public func register(_ account: TestAccount, invite: String?) async throws -> String {
        let reply = try await call("POST", "/api/v1/auth/register", json: account.registration(invite: invite))
        guard reply.status == 201, let token = TestJSON.string(reply.body, path: ["token"]) else {
            throw TestSupportError("registration failed: \(reply.status) \(reply.body)")
        }
        return token
    }

    /// Logs in and returns (token, session id).
    public func login(_ account: TestAccount, device: String = "test device") async throws -> (token: String, sessionId: String) {
        let reply = try await call("POST", "/api/v1/auth/login", json: account.login(device: device))
        guard reply.status == 200, let token = TestJSON.string(reply.body, path: ["token"]),
              let session = TestJSON.string(reply.body, path: ["sessionId"]) else {
            throw TestSupportError("login failed: \(reply.status) \(reply.body)")
        }
        return (token, session)
    }
}
