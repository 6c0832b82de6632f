import AsyncHTTPClient
import CircleCore
import CircleProtocol
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A problem+json answer from the server, or a transport failure.
public struct CircleAPIError: Error, CustomStringConvertible, Sendable {
    public let status: Int
    /// The problem slug (`stale-epoch`, `not-found`, ...), or `transport`.
    public let slug: String
    public let detail: String

    public var description: String { status == 0 ? "cannot reach the server: \(detail)" : "\(status) \(slug): \(detail)" }

    init(status: Int, slug: String, detail: String) {
        self.status = status
        self.slug = slug
        self.detail = detail
    }

    /// The error of a non-2xx answer, from its problem+json body when it has one.
    init(problem body: Data, status: HTTPResponseStatus) {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        let type = object?["type"] as? String ?? "urn:circle:problem:http-\(status.code)"
        self.init(status: Int(status.code), slug: String(type.split(separator: ":").last ?? ""), detail: object?["detail"] as? String ?? status.reasonPhrase)
    }
}

/// The HTTP client for the whole Circle API (docs/API.md): JSON in and out, bearer tokens,
/// problem+json errors as `CircleAPIError`.
public struct CircleAPI: Sendable {
    public let baseURL: String
    public var token: String?
    let http: HTTPClient

    /// The HTTP client every `CircleAPI` shares unless given another: like `HTTPClient.shared`
    /// (lives as long as the process, never shut down), with room for many devices in one process
    /// (benchmarks, scripted users) instead of 8 connections per host.
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 128)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(baseURL: String, token: String? = nil, http: HTTPClient = CircleAPI.sharedHTTPClient) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.token = token
        self.http = http
    }

    public var socketURL: String {
        (baseURL.hasPrefix("https://") ? "wss://" + baseURL.dropFirst(8) : "ws://" + baseURL.dropFirst(7)) + "/api/v1/events"
    }

    struct Empty: Codable, Sendable {}

    /// Sends a request and decodes the answer.
    public func call<Answer: Decodable>(_ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)? = nil, as: Answer.Type = Answer.self) async throws -> Answer {
        let data = try await raw(method, path, body: body)
        do {
            return try JSONDecoder().decode(Answer.self, from: data)
        } catch {
            throw CircleAPIError(status: 0, slug: "bad-answer", detail: "\(method) \(path): the answer does not have the expected shape (\(error))")
        }
    }

    /// Sends a request whose answer has no body of interest.
    public func send(_ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)? = nil) async throws {
        _ = try await raw(method, path, body: body)
    }

    func raw(_ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)?) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        // As a browser would: the origin this client addresses (the server answers an unknown
        // name's prelogin with it, as for an account made there).
        if let origin = try? LoginKeys.origin(of: baseURL) { request.headers.add(name: "Origin", value: origin) }
        if let body {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try encoder.encode(body)))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw CircleAPIError(status: 0, slug: "transport", detail: "\(error)")
        }
        let data = Data(buffer: bytes)
        guard (200..<300).contains(Int(response.status.code)) else { throw CircleAPIError(problem: data, status: response.status) }
        return data
    }
}

/// The answers and bodies of the API, as a client sees them.
public enum APITypes {
    public struct ServerInfo: Codable, Sendable { public let serverId: String; public let protocolVersion: Int; public let mode: String }
    public struct KDF: Codable, Sendable { public let name: String; public let iterations: Int }
    public struct Prelogin: Codable, Sendable {
        public let serverId: String
        public let username: String
        public let salt: String
        public let kdf: KDF
        /// The origin the account's login keys are bound to; nil for an account made before.
        public let origin: String?
    }
    public struct Profile: Codable, Sendable { public let userId: String; public let username: String; public let displayName: String; public let isAdmin: Bool }
    public struct Session: Codable, Sendable {
        public let token: String
        public let sessionId: String
        public let user: Profile
        public let bundle: String
        public let bundleVersion: Int64
    }
    public struct DirectoryEntry: Codable, Sendable {
        public let userId: String
        public let username: String
        public let displayName: String
        public let identityKey: String
        public let x25519Key: String
        public let kxCert: String
    }
    public struct Register: Codable, Sendable {
        let invite: String?
        let userId, username, displayName, authKey, salt, bundle, recoveryBundle, recoveryAuthKey, identityKey, x25519Key, kxCert: String
        let deviceLabel: String
        let origin: String
    }
    public struct BindLogin: Codable, Sendable { let currentAuthKey, authKey, salt, bundle, origin: String }
    public struct LoginBound: Codable, Sendable { public let bundleVersion: Int64; public let origin: String }
    public struct Login: Codable, Sendable { let username: String; let authKey: String; let deviceLabel: String }
    public struct Username: Codable, Sendable { let username: String }

    public struct WireOp: Codable, Sendable {
        public let op: String
        public let signature: String
        init(_ signed: SignedOp) {
            op = Base64URL.encode(signed.bytes)
            signature = Base64URL.encode(signed.signature)
        }
    }
    public struct Create: Codable, Sendable { let genesis: WireOp; let ops: [WireOp] }
    public struct Created: Codable, Sendable { public let conversationId: String; public let head: Int64; public let epoch: String }
    public struct Summary: Codable, Sendable {
        public let id: String
        public let kind: String
        public let head: Int64
        public let epoch: String
        public let lastSeq: Int64
        public let readSeq: Int64
        public let unread: Int64
        public let role: String
        public let updatedAt: Int64
    }
    public struct SummaryList: Codable, Sendable { public let conversations: [Summary] }
    public struct ListedOp: Codable, Sendable { public let n: Int64; public let op: String; public let signature: String }
    public struct OpList: Codable, Sendable { public let ops: [ListedOp]; public let head: Int64 }
    public struct Message: Codable, Sendable {
        public let conversationId: String
        public let id: String
        public let seq: Int64
        public let sender: String
        public let header: String
        public let ciphertext: String
        public let signature: String
        public let expiresAt: Int64
        public let createdAt: Int64
        public let editedBy: String?
        public let deleted: Bool
    }
    public struct MessagePage: Codable, Sendable { public let messages: [Message]; public let more: Bool; public let lastSeq: Int64 }
    public struct SendMessage: Codable, Sendable { let header: String; let ciphertext: String; let signature: String }
    public struct Sent: Codable, Sendable { public let id: String; public let seq: Int64; public let duplicate: Bool }
    public struct WireEnvelope: Codable, Sendable {
        public let epoch: String
        public let deviceId: String
        public let generation: UInt32
        public let recipient: String
        public let enc: String
        public let ciphertext: String
        public let signature: String
        public let sender: String?
    }
    public struct EnvelopeList: Codable, Sendable {
        public let envelopes: [WireEnvelope]
        /// Whether another page follows, asked for with `after=next`.
        public let more: Bool?
        public let next: String?
    }
    public struct PostEnvelopes: Codable, Sendable { let envelopes: [WireEnvelope] }
    public struct Read: Codable, Sendable { let seq: Int64 }
}

extension Base64URL {
    /// Decodes or throws a clear error naming what was malformed.
    static func bytes(_ text: String, _ what: String) throws -> [UInt8] {
        guard let data = decode(text) else { throw ProtocolError.malformed("\(what) is not base64url") }
        return Array(data)
    }
}
