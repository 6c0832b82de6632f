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

    /// `/metrics` in the Prometheus text format.
    public static func addRoutes(to router: Router<CircleRequestContext>) {
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}
