import AsyncHTTPClient
import CircleCore
import CircleCrypto
import Crypto
import Foundation
import NIOCore

/// A member made by the benchmark: real keys, random secrets (the server never sees a password).
struct BenchAccount {
    let userId = UUID().uuidString.lowercased()
    let username: String
    let authKey = SecureRandom.bytes(32)
    let identity = Curve25519.Signing.PrivateKey()
    let agreement = Curve25519.KeyAgreement.PrivateKey()

    init(username: String) { self.username = username }

    var registration: String {
        let x25519 = Array(agreement.publicKey.rawRepresentation)
        let cert = try! identity.signature(for: CircleLabels.kxCertMessage(userId: userId, x25519Public: x25519))
        let body: [String: String] = [
            "userId": userId, "username": username, "displayName": username,
            "authKey": Base64URL.encode(authKey), "salt": Base64URL.encode(SecureRandom.bytes(32)),
            "bundle": Base64URL.encode(SecureRandom.bytes(200)), "recoveryBundle": Base64URL.encode(SecureRandom.bytes(200)),
            "recoveryAuthKey": Base64URL.encode(SecureRandom.bytes(32)),
            "identityKey": Base64URL.encode(identity.publicKey.rawRepresentation),
            "x25519Key": Base64URL.encode(x25519), "kxCert": Base64URL.encode(cert), "deviceLabel": "bench",
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    var login: String {
        "{\"username\":\"\(username)\",\"authKey\":\"\(Base64URL.encode(authKey))\",\"deviceLabel\":\"bench\"}"
    }

    /// Registers (the server must allow open registration) and returns the first token.
    func register(at baseURL: String) async throws -> String {
        try await Self.token(from: post(baseURL + "/api/v1/auth/register", registration))
    }

    func logIn(at baseURL: String) async throws -> String {
        try await Self.token(from: post(baseURL + "/api/v1/auth/login", login))
    }

    private func post(_ url: String, _ body: String) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    private static func token(from reply: (Int, String)) throws -> String {
        guard (200..<300).contains(reply.0),
              let object = try? JSONSerialization.jsonObject(with: Data(reply.1.utf8)) as? [String: Any],
              let token = object["token"] as? String else {
            throw BenchError("the server refused: \(reply.0) \(reply.1) (does it allow open registration?)")
        }
        return token
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
