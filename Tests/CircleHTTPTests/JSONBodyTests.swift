import CircleCore
import CircleHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The shared request-body handling every JSON endpoint uses, through a real router.
@Suite("JSON bodies and problem+json")
struct JSONBodyTests {
    struct Greeting: StrictDecodable, Sendable {
        let name: String
        let count: Int
        let tags: [String]?
        static let allowedKeys: Set<String> = ["name", "count", "tags"]
    }

    actor Recorder {
        var accepted: [String] = []
        func record(_ name: String) { accepted.append(name) }
    }

    func withRouter(limit: Int = 1024, _ body: @Sendable (any TestClientProtocol, Recorder) async throws -> Void) async throws {
        let recorder = Recorder()
        let router = Router(context: CircleRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: BodyLimitMiddleware(limit: limit))
        router.post("/greet") { request, context in
            let greeting = try await request.decodeJSON(as: Greeting.self, context: context)
            await recorder.record(greeting.name)
            return JSONResponse(["hello": greeting.name], status: .created)
        }
        router.get("/boom") { _, _ -> String in
            struct Secret: Error { let detail = "connection string postgres://u:pw@h/d" }
            throw Secret()
        }
        try await Application(router: router).test(.router) { client in try await body(client, recorder) }
    }

    func post(_ client: any TestClientProtocol, _ body: String, contentType: String = "application/json") async throws -> (HTTPResponse.Status, ProblemBody?) {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return try await client.execute(uri: "/greet", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            let problem = response.headers[.contentType] == "application/problem+json"
                ? try JSONDecoder().decode(ProblemBody.self, from: Data(buffer: response.body)) : nil
            return (response.status, problem)
        }
    }

    @Test("a valid body is accepted")
    func valid() async throws {
        try await withRouter { client, recorder in
            let (status, problem) = try await post(client, #"{"name":"ann","count":2,"tags":["x"]}"#)
            #expect(status == .created)
            #expect(problem == nil)
            #expect(await recorder.accepted == ["ann"])
        }
    }

    @Test("bad bodies get a 4xx with a clear detail and change nothing", arguments: [
        (#"{"name":"ann","count":2"#, 400, "The body is not valid JSON."),
        (#"{"name":"ann","count":"two"}"#, 400, "`count` must be an integer."),
        (#"{"name":"ann"}"#, 400, "`count` is required."),
        (#"{"name":null,"count":1}"#, 400, "`name` must be a string, not null."),
        (#"{"name":"ann","count":1,"admin":true}"#, 400, "Unknown member: admin."),
        (#"["name"]"#, 400, "The body must be a JSON object."),
        ("null", 400, "The body must be a JSON object."),
        ("", 400, "The body is not valid JSON."),
        (#"{"name":"ann","count":1} x"#, 400, "The body is not valid JSON."),
        (#"{"name":"ann","count":1,"tags":[1]}"#, 400, "`tags.[0]` must be a string."),
    ])
    func bad(_ body: String, status: Int, detail: String) async throws {
        try await withRouter { client, recorder in
            let (code, problem) = try await post(client, body)
            #expect(Int(code.code) == status)
            #expect(problem?.detail == detail)
            #expect(problem?.status == status)
            #expect(await recorder.accepted.isEmpty)
        }
    }

    @Test("the wrong content type gets 415")
    func wrongContentType() async throws {
        try await withRouter { client, recorder in
            let (code, problem) = try await post(client, #"{"name":"ann","count":1}"#, contentType: "text/plain")
            #expect(code == .unsupportedMediaType)
            #expect(problem?.type == "urn:circle:problem:unsupported-media-type")
            #expect(await recorder.accepted.isEmpty)
        }
    }

    @Test("a body over the limit gets 413")
    func overLimit() async throws {
        try await withRouter(limit: 1024) { client, recorder in
            let padding = String(repeating: "x", count: 2000)
            let (code, problem) = try await post(client, #"{"name":"\#(padding)","count":1}"#)
            #expect(code == .contentTooLarge)
            #expect(problem?.type == "urn:circle:problem:payload-too-large")
            #expect(await recorder.accepted.isEmpty)
        }
    }

    @Test("an unexpected error is a 500 that reveals nothing")
    func internalError() async throws {
        try await withRouter { client, _ in
            try await client.execute(uri: "/boom", method: .get) { response in
                #expect(response.status == .internalServerError)
                let text = String(buffer: response.body)
                #expect(!text.contains("postgres://"))
                #expect(text.contains("urn:circle:problem:internal"))
            }
        }
    }
}
