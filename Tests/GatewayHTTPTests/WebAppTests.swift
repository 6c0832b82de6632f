import CircleConfig
import CircleTestSupport
import Foundation
import Testing

@Suite("Web client serving")
struct WebAppTests {
    /// A web root with a page, a module and a file outside it that must never be served.
    static func makeRoot() throws -> URL {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("circle-web-\(UUID().uuidString)")
        let root = base.appendingPathComponent("Web")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("js"), withIntermediateDirectories: true)
        try Data("<!doctype html><title>Circle</title>".utf8).write(to: root.appendingPathComponent("index.html"))
        try Data("export const x = 1;\n".utf8).write(to: root.appendingPathComponent("js/app.js"))
        try Data("secret".utf8).write(to: base.appendingPathComponent("outside.txt"))
        return root
    }

    @Test("the page for every app address, the files as they are, strict headers on everything, nothing outside the root")
    func serving() async throws {
        let root = try Self.makeRoot()
        defer { try? FileManager.default.removeItem(at: root.deletingLastPathComponent()) }
        let harness = GatewayHarness(registration: "open", extra: [.webRoot: root.path])
        try await harness.run { api in
            for path in ["/", "/invite/abc", "/c/xyz", "/settings", "/sessions", "/vault", "/s/abc"] {
                let page = try await api.call("GET", path)
                #expect(page.status == 200, "\(path)")
                #expect(page.body.contains("<title>Circle</title>"), "\(path)")
                #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
                let policy = page.headers["content-security-policy"] ?? ""
                #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe"))
                #expect(policy.contains("frame-ancestors 'none'") && policy.contains("connect-src 'self'"))
                #expect(page.headers["x-content-type-options"] == "nosniff")
                #expect(page.headers["referrer-policy"] == "no-referrer")
                #expect(page.headers["x-frame-options"] == "DENY")
                #expect(page.headers["cache-control"] == "no-cache")
            }
            let module = try await api.call("GET", "/js/app.js")
            #expect(module.status == 200 && module.body == "export const x = 1;\n")
            #expect(module.headers["content-type"]?.contains("javascript") == true)
            #expect(module.headers["content-security-policy"] != nil)

            for path in ["/../outside.txt", "/js/../../outside.txt", "/%2e%2e/outside.txt", "/js/%2e%2e/%2e%2e/outside.txt"] {
                let escape = try await api.call("GET", path)
                #expect(escape.status == 400 || escape.status == 404, "\(path)")
                #expect(!escape.body.contains("secret"), "\(path)")
            }
            let missing = try await api.call("GET", "/js/nope.js")
            #expect(missing.status == 404 && missing.headers["content-type"] == "application/problem+json")
            #expect(missing.headers["content-security-policy"] != nil, "error answers carry the headers too")

            let api404 = try await api.call("GET", "/api/v1/nothing-here")
            #expect(api404.status == 404 && api404.headers["cache-control"] == "no-store")
            let server = try await api.call("GET", "/api/v1/server")
            #expect(server.status == 200 && server.headers["cache-control"] == "no-store")
            // Nothing says what answers; HSTS only for what came over HTTPS (the proxy says so).
            #expect(server.headers["server"] == nil)
            #expect(server.headers["strict-transport-security"] == nil)
            let overTLS = try await api.call("GET", "/api/v1/server", headers: ["X-Forwarded-Proto": "https"])
            #expect(overTLS.headers["strict-transport-security"] == "max-age=31536000")
            let post = try await api.call("POST", "/", json: "{}")
            #expect((post.status == 404 || post.status == 405) && !post.body.contains("<title>"))
        }
    }

    @Test("a server without the web client says so instead of an empty page")
    func missingRoot() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.webRoot: "/nonexistent/circle-web"])
        try await harness.run { api in
            let page = try await api.call("GET", "/")
            #expect(page.status == 503)
            #expect(page.body.contains("web.root"))
            #expect(try await api.call("GET", "/api/v1/server").status == 200)
        }
    }
}
