import HTTPTypes
import Hummingbird

/// Adds the headers every Circle answer carries, error answers included: a strict
/// Content-Security-Policy (the web client is same-origin ES modules and CSS only: no inline
/// script or style, no other host), no sniffing, no referrer, no framing, no caching of API
/// answers (they carry tokens and bundles), revalidation of the web client's files, and HSTS
/// for requests that came over HTTPS.
public struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The policy of every page and answer.
    public static var contentSecurityPolicy: String { SecurityHeaderValues.contentSecurityPolicy }

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        Self.apply(to: &response.headers, path: request.uri.path, https: request.headers[.xForwardedProto]?.lowercased() == "https")
        return response
    }

    /// `https`: the request reached the proxy over HTTPS (its X-Forwarded-Proto), so browsers are
    /// told to use nothing else for a year (over plain HTTP they ignore the header anyway).
    static func apply(to fields: inout HTTPFields, path: String, https: Bool = false) {
        if https { fields[.strictTransportSecurity] = "max-age=31536000" }
        fields[.contentSecurityPolicy] = SecurityHeaderValues.contentSecurityPolicy
        fields[.xContentTypeOptions] = "nosniff"
        fields[.referrerPolicy] = "no-referrer"
        fields[.xFrameOptions] = "DENY"
        fields[.crossOriginOpenerPolicy] = "same-origin"
        fields[.crossOriginResourcePolicy] = "same-origin"
        fields[.permissionsPolicy] = "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()"
        if fields[.cacheControl] == nil {
            let isAPI = path.hasPrefix("/api/") || path.hasPrefix("/health") || path == "/metrics"
            fields[.cacheControl] = isAPI ? "no-store" : "no-cache"
        }
    }
}

/// The header values, made once (a generic type cannot hold stored statics).
enum SecurityHeaderValues {
    static let contentSecurityPolicy = [
        "default-src 'none'", "script-src 'self'", "style-src 'self'",
        "img-src 'self' data: blob:", "connect-src 'self'", "font-src 'self'",
        "media-src 'self' blob:", "worker-src 'self'", "manifest-src 'self'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ].joined(separator: "; ")
}

extension HTTPField.Name {
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let crossOriginOpenerPolicy = Self("Cross-Origin-Opener-Policy")!
    static let crossOriginResourcePolicy = Self("Cross-Origin-Resource-Policy")!
    static let permissionsPolicy = Self("Permissions-Policy")!
    static let strictTransportSecurity = Self("Strict-Transport-Security")!
    static let xForwardedProto = Self("X-Forwarded-Proto")!
}
