/// An error that is safe to show a client, answered as RFC 9457 problem+json.
///
/// `type` is a stable identifier clients can match on; `detail` is for people. Neither ever holds
/// internal details: those go to the log with `String(reflecting:)` of the underlying error.
public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status code.
    public let statusCode: Int
    /// Stable slug such as `bad-request` or `resync-required`; the full type is `typeURI`.
    public let slug: String
    /// Short human summary of the problem type.
    public let title: String
    /// Human explanation of this occurrence.
    public let detail: String
    /// Extra response headers (for example `Retry-After`).
    public let extraHeaders: [String: String]

    public init(status: Int, slug: String, title: String, detail: String, headers: [String: String] = [:]) {
        self.statusCode = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extraHeaders = headers
    }

    /// The problem `type` member: a URN so it never depends on where the server is hosted.
    public var typeURI: String { "urn:circle:problem:\(slug)" }

    public var description: String { "\(statusCode) \(slug): \(detail)" }

    public static func badRequest(_ detail: String) -> Problem {
        Problem(status: 400, slug: "bad-request", title: "Bad request", detail: detail)
    }

    public static func invalidField(_ field: String, _ detail: String) -> Problem {
        Problem(status: 422, slug: "invalid-field", title: "Invalid field", detail: "\(field): \(detail)")
    }

    public static func unauthorized(_ detail: String = "A valid session token is required.") -> Problem {
        Problem(status: 401, slug: "unauthorized", title: "Unauthorized", detail: detail)
    }

    public static func forbidden(_ detail: String) -> Problem {
        Problem(status: 403, slug: "forbidden", title: "Forbidden", detail: detail)
    }

    public static func notFound(_ detail: String = "No such resource.") -> Problem {
        Problem(status: 404, slug: "not-found", title: "Not found", detail: detail)
    }

    public static func methodNotAllowed(_ detail: String) -> Problem {
        Problem(status: 405, slug: "method-not-allowed", title: "Method not allowed", detail: detail)
    }

    public static func conflict(_ detail: String) -> Problem {
        Problem(status: 409, slug: "conflict", title: "Conflict", detail: detail)
    }

    public static func gone(_ slug: String, _ detail: String) -> Problem {
        Problem(status: 410, slug: slug, title: "Gone", detail: detail)
    }

    public static func payloadTooLarge(_ detail: String) -> Problem {
        Problem(status: 413, slug: "payload-too-large", title: "Payload too large", detail: detail)
    }

    public static func unsupportedMediaType(_ detail: String) -> Problem {
        Problem(status: 415, slug: "unsupported-media-type", title: "Unsupported media type", detail: detail)
    }

    /// A wait as whole seconds for Retry-After: rounded up, at least 1.
    public static func retryAfterSeconds(_ wait: Duration) -> Int {
        max(1, Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0))
    }

    public static func tooManyRequests(retryAfterSeconds: Int) -> Problem {
        Problem(
            status: 429, slug: "too-many-requests", title: "Too many requests",
            detail: "Too many attempts; retry after \(retryAfterSeconds) seconds.",
            headers: ["Retry-After": String(retryAfterSeconds)]
        )
    }

    /// A named rate limit (docs/API.md, "Rate limits") was reached.
    public static func rateLimited(_ name: String, what: String, retryAfterSeconds: Int) -> Problem {
        Problem(
            status: 429, slug: "rate-limited", title: "Rate limit reached",
            detail: "Too many \(what) (limit \(name)); retry after \(retryAfterSeconds) seconds.",
            headers: ["Retry-After": String(retryAfterSeconds)]
        )
    }

    public static func unavailable(_ detail: String) -> Problem {
        Problem(status: 503, slug: "unavailable", title: "Service unavailable", detail: detail)
    }

    public static let internalError = Problem(
        status: 500, slug: "internal", title: "Internal server error",
        detail: "The server failed to handle this request; it has been logged."
    )
}
