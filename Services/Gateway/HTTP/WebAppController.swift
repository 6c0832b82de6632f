import CircleCore
import CircleHTTP
import Foundation
import GatewayCore
import GatewayStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// Serves the browser client (Web/): its files as they are, and `index.html` for each of the
/// app's own addresses, so a reload or a shared link opens the right screen. Names from the
/// request never reach the file system except through Hummingbird's file middleware, which
/// refuses `..`; every answer gets the strict headers of `SecurityHeadersMiddleware`.
struct WebAppController {
    /// The client-side routes that answer with the app's page.
    static let appPaths = ["/", "/invite/{code}", "/c/{conversation}", "/settings", "/sessions", "/vault", "/activity", "/s/{link}"]

    let root: String
    let logger: Logger

    init(root: String, logger: Logger) {
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
        self.logger = logger
    }

    var indexPath: String { root + "/index.html" }

    func addRoutes(to router: Router<CircleRequestContext>) {
        if FileManager.default.fileExists(atPath: indexPath) {
            logger.info("serving the web client", metadata: ["root": "\(root)"])
        } else {
            logger.warning("no web client here: set web.root to the Web folder", metadata: ["root": "\(root)"])
        }
        router.add(middleware: FileMiddleware<CircleRequestContext, LocalFileSystem>(root, logger: logger))
        for path in Self.appPaths {
            router.get(RouterPath(path)) { _, _ in try await self.page() }
        }
    }

    /// The app's page, read on each request (it is small, and a deployment can update it in place).
    func page() async throws -> Response {
        let path = indexPath
        let data: Data
        do {
            data = try await NIOThreadPool.singleton.runIfActive { try Data(contentsOf: URL(fileURLWithPath: path)) }
        } catch {
            throw Problem.unavailable("The web client is not installed on this server (web.root is \(root)).")
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
