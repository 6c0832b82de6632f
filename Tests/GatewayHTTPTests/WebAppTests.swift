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

            // API paths never reach the folder's files: a `..` in an id gets the API's answer (this
            // gateway alone has no vault routes: 404, or 401 first for HEAD), not the file
            // middleware's 400.
            for method in ["GET", "HEAD"] {
                let dotted = try await api.call(method, "/api/v1/vault/uploads/0..0")
                #expect([401, 404].contains(dotted.status), "\(method): \(dotted.status)")
            }
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

    @Test("without web.root every file of Web/ is served from the binary, byte for byte, with an ETag that revalidates to 304; the app's addresses get its page")
    func builtIn() async throws {
        let web = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Web")
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let walker = try #require(FileManager.default.enumerator(at: web, includingPropertiesForKeys: [.isRegularFileKey]))
            var served = 0
            for case let url as URL in walker where try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true && url.pathExtension != "md" {
                let path = String(url.standardizedFileURL.path.dropFirst(web.standardizedFileURL.path.count))
                let reply = try await api.send("GET", path, bytes: nil)
                let expected = Array(try Data(contentsOf: url))
                #expect(reply.status == 200 && reply.bytes == expected, "\(path)")
                served += 1
            }
            #expect(served > 80)
            let page = try await api.call("GET", "/vault")
            let index = Array(try Data(contentsOf: web.appendingPathComponent("index.html")))
            #expect(page.status == 200 && page.bytes == index)
            let module = try await api.call("GET", "/js/app.js")
            #expect(module.headers["content-type"] == "text/javascript; charset=utf-8" && module.headers["content-security-policy"] != nil)
            let etag = try #require(module.headers["etag"])
            #expect(try await api.call("GET", "/js/app.js", headers: ["If-None-Match": etag]).status == 304)
            #expect(try await api.call("GET", "/js/app.js", headers: ["If-None-Match": "\"other\""]).status == 200)
            let head = try await api.call("HEAD", "/css/app.css")
            #expect(head.status == 200 && head.bytes.isEmpty && head.headers["content-type"] == "text/css; charset=utf-8")
            let missing = try await api.call("GET", "/js/nope.js")
            #expect(missing.status == 404 && missing.headers["content-type"] == "application/problem+json")
            #expect(try await api.call("GET", "/js/protocol/README.md").status == 404, "notes for developers stay out")
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
