import AllInOne
import CircleConfig
import CircleServerTestSupport
import CircleTestSupport
import Foundation
import Testing

@Suite("The API contract: docs/openapi.yaml, served at /api/v1/openapi.json")
struct APIContractTests {
    @Test("the document is served to anyone as OpenAPI 3.1 JSON, and every route the six services answer is in it and every operation in it is answered")
    func routesMatch() async throws {
        let harness = ServerHarness(.sqlite)
        try await harness.run { api, _ in
            let reply = try await api.send("GET", "/api/v1/openapi.json", bytes: nil, headers: [:])
            #expect(reply.status == 200 && reply.headers["content-type"] == "application/json")
            let document = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
            var documented: Set<String> = []
            for (path, item) in paths {
                let normalized = path.replacing(/\{[^}\/]+\}/, with: "{}")
                for method in item.keys where methods.contains(method) { documented.insert(method.uppercased() + " " + normalized) }
            }
            let served = Set(try await embeddedRouteList(reader: ConfigSources.reader(values: try await harness.values())))
            #expect(served.count > 50)
            #expect(served.subtracting(documented).sorted() == [], "served but missing from docs/openapi.yaml")
            #expect(documented.subtracting(served).sorted() == [], "in docs/openapi.yaml but served by no route")
        }
    }
}
