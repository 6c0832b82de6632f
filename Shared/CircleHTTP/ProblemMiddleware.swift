import CircleCore
import HTTPTypes
import Hummingbird
import Logging

/// Turns every error into an RFC 9457 problem+json response.
///
/// A `Problem` is answered as it is; Hummingbird's own errors (no route, wrong method, body too
/// large) get a clear detail; anything else is a 500 whose details go only to the log.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            throw problem
        } catch let error as HTTPError {
            throw Self.problem(for: error, request: request)
        } catch let error as any HTTPResponseError {
            throw Problem(status: Int(error.status.code), slug: "http-\(error.status.code)", title: error.status.reasonPhrase, detail: error.status.reasonPhrase)
        } catch is CancellationError {
            throw Problem.unavailable("The server is shutting down; retry.")
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            throw Problem.internalError
        }
    }

    static func problem(for error: HTTPError, request: Request) -> Problem {
        switch error.status {
        case .notFound:
            return .notFound("No route for \(request.method) \(request.uri.path).")
        case .methodNotAllowed:
            return .methodNotAllowed("\(request.method) is not allowed on \(request.uri.path).")
        case .contentTooLarge:
            return .payloadTooLarge("The request body is larger than this server accepts.")
        default:
            let detail = error.body ?? error.status.reasonPhrase
            return Problem(status: Int(error.status.code), slug: error.status.code < 500 ? "bad-request" : "internal", title: error.status.reasonPhrase, detail: detail)
        }
    }
}

/// Sets the request body limit and refuses a declared body over it before reading any of it.
public struct BodyLimitMiddleware: RouterMiddleware {
    public typealias Context = CircleRequestContext
    let limit: Int
    /// Paths whose handlers stream the body and enforce their own limits (vault uploads).
    let streamingPrefixes: [String]

    public init(limit: Int, streamingPrefixes: [String] = []) {
        self.limit = limit
        self.streamingPrefixes = streamingPrefixes
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if streamingPrefixes.contains(where: { request.uri.path.hasPrefix($0) }) { return try await next(request, context) }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw Problem.payloadTooLarge("The request body is \(declared) bytes; the limit is \(limit) bytes.")
        }
        var context = context
        context.bodyLimit = limit
        return try await next(request, context)
    }
}
