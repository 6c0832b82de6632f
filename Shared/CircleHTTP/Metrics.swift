import CircleCore
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore
import Prometheus

/// The process's Prometheus registry, installed as the swift-metrics backend once per process.
public enum CircleMetrics {
    public static let registry = PrometheusCollectorRegistry()
    private static let once = BootstrapOnce()

    /// Installs the Prometheus backend (first call wins; later calls are harmless).
    public static func bootstrap() {
        once.run {
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultDurationHistogramBuckets = [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
            ]
            MetricsSystem.bootstrap(factory)
        }
    }

    /// `/metrics` in the Prometheus text format, for loopback connections (X-Forwarded-For is
    /// not trusted here: a proxy on the same machine is loopback too, which is why nginx refuses
    /// the path) or a request bearing `metrics.token`. Anyone else gets the 404 of an unknown path.
    public static func addRoutes(to router: Router<CircleRequestContext>, token: String?) {
        router.get("/metrics") { request, context in
            guard isLoopback(context.remoteAddress) || presents(token, request) else { throw Problem.notFound() }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    /// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
    static func presents(_ token: String?, _ request: Request) -> Bool {
        guard let token, let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return false }
        return ConstantTime.equal(header.dropFirst(7).utf8, token.utf8)
    }
}
