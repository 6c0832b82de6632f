import AllInOne
import CircleConfig
import CircleCore
import CircleHTTP
import CircleTestSupport
import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The real embedded application, built from configuration, tested through its router.
@Suite("Embedded server")
struct EmbeddedApplicationTests {
    static func reader(folder: URL, extra: [CircleConfigKey: String] = [:]) -> ConfigReader {
        ConfigSources.reader(values: [
            .httpPort: "0",
            .sqlitePath: folder.appendingPathComponent("circle.sqlite").path,
            .authPepperFile: folder.appendingPathComponent("pepper.key").path,
            .activityKeyFile: folder.appendingPathComponent("activity.key").path,
            .logLevel: "warning",
        ].merging(extra) { _, new in new })
    }

    static func withApp(extra: [CircleConfigKey: String] = [:], _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-http-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let server = try await buildEmbeddedServer(reader: reader(folder: folder, extra: extra))
        try await server.application.test(.router, body)
    }

    /// The scraper's token in these tests.
    static let metricsToken = String(repeating: "m", count: 40)

    @Test("/healthz and /readyz answer anyone; /metrics answers a request bearing metrics.token (anyone else, not on loopback, gets 404)")
    func healthReadyMetrics() async throws {
        try await Self.withApp(extra: [.metricsToken: Self.metricsToken]) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"status":"ok"}"#)
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"bus":"ok","database":"ok","status":"ready"}"#)
            }
            // The router test has no connection (so no loopback address): only the token opens it.
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer " + String(repeating: "x", count: 40)]) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer " + Self.metricsToken]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: response.body)
                #expect(text.contains(#"hb_requests{http_route="/healthz",http_request_method="GET",http_response_status_code="200"}"#))
                #expect(text.contains(#"http_server_request_duration_bucket{http_route="/healthz",http_request_method="GET",http_response_status_code="200",le="0.001"}"#))
            }
        }
    }

    @Test("the server id is stable across restarts of the same database")
    func serverInfo() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-http-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        struct Info: Decodable { let serverId: String; let protocolVersion: Int; let mode: String }
        var ids: [String] = []
        for _ in 0..<2 {
            let server = try await buildEmbeddedServer(reader: Self.reader(folder: folder))
            let id = try await server.application.test(.router) { client in
                try await client.execute(uri: "/api/v1/server", method: .get) { response in
                    #expect(response.status == .ok)
                    let info = try JSONDecoder().decode(Info.self, from: Data(buffer: response.body))
                    #expect(info.mode == "embedded")
                    #expect(info.protocolVersion == 1)
                    return info.serverId
                }
            }
            ids.append(id)
        }
        #expect(ids[0] == ids[1])
        #expect(ids[0].count == 32)
    }

    @Test("unknown routes and wrong methods get problem+json")
    func unknownRoutes() async throws {
        try await Self.withApp { client in
            try await client.execute(uri: "/api/v1/nope", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = try JSONDecoder().decode(ProblemBody.self, from: Data(buffer: response.body))
                #expect(problem == ProblemBody(type: "urn:circle:problem:not-found", title: "Not found", status: 404, detail: "No route for GET /api/v1/nope."))
            }
            try await client.execute(uri: "/healthz", method: .delete) { response in
                #expect([404, 405].contains(response.status.code))
                #expect(response.headers[.contentType] == "application/problem+json")
            }
        }
    }

    @Test("a declared body over the limit gets 413 before it is read")
    func bodyOverLimit() async throws {
        try await Self.withApp(extra: [.httpBodyLimit: "2048"]) { client in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            try await client.execute(uri: "/api/v1/server", method: .post, headers: headers, body: ByteBuffer(repeating: UInt8(ascii: "a"), count: 4096)) { response in
                #expect(response.status == .contentTooLarge)
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = try JSONDecoder().decode(ProblemBody.self, from: Data(buffer: response.body))
                #expect(problem.detail.contains("limit is 2048 bytes"))
            }
        }
    }
}

struct ProblemBody: Codable, Equatable {
    let type: String
    let title: String
    let status: Int
    let detail: String
}
