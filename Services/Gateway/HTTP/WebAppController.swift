import CircleCore
import CircleHTTP
import CircleWebClient
import Foundation
import GatewayCore
import GatewayStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// Serves the browser client: its files as they are, and `index.html` for each of the app's own
/// addresses, so a reload or a shared link opens the right screen. The files are the copy built
/// into the binary (`CircleWebClient`), or with `web.root` a folder read on each request
/// (development). Names from the request never reach the file system except through
/// Hummingbird's file middleware, which refuses `..`; every answer gets the strict headers of
/// `SecurityHeadersMiddleware`.
struct WebAppController {
    /// The client-side routes that answer with the app's page.
    static let appPaths = ["/", "/invite/{code}", "/c/{conversation}", "/settings", "/sessions", "/invitations", "/vault", "/activity", "/s/{link}"]

    /// A folder to serve instead of the built-in files.
    let root: String?
    let logger: Logger

    init(root: String?, logger: Logger) {
        self.root = root.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        self.logger = logger
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        if let root {
            if FileManager.default.fileExists(atPath: root + "/index.html") {
                logger.info("serving the web client from a folder", metadata: ["root": "\(root)"])
            } else {
                logger.warning("no web client in web.root", metadata: ["root": "\(root)"])
            }
            router.add(middleware: FolderFilesMiddleware(files: FileMiddleware(root, logger: logger)))
        } else {
            router.add(middleware: BuiltInFilesMiddleware())
        }
        for path in Self.appPaths {
            router.get(RouterPath(path)) { request, _ in try await self.page(request) }
        }
    }

    /// The app's page: built in, or read from the folder on each request (it is small, and a
    /// deployment can update it in place).
    func page(_ request: Request) async throws -> Response {
        guard let root else {
            guard let file = WebClient.files["/index.html"] else { throw Problem.unavailable("This build has no web client.") }
            return BuiltInFilesMiddleware.response(file, for: request)
        }
        let path = root + "/index.html"
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

/// The folder's files for every path outside the API, so an API path (say one with `..` in an
/// id) gets the API's own answer rather than the file middleware's.
struct FolderFilesMiddleware: RouterMiddleware {
    typealias Context = CircleRequestContext
    let files: FileMiddleware<CircleRequestContext, LocalFileSystem>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/api/") { return try await next(request, context) }
        return try await files.handle(request, context: context, next: next)
    }
}

/// Answers GET and HEAD for the built-in files by their path; revalidated on every use
/// (`no-cache` with an ETag), so a new build's files are picked up at once.
struct BuiltInFilesMiddleware: RouterMiddleware {
    typealias Context = CircleRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head, let file = WebClient.files[request.uri.path] else {
            return try await next(request, context)
        }
        return Self.response(file, for: request)
    }

    static func response(_ file: WebClient.File, for request: Request) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = file.contentType
        headers[.eTag] = file.etag
        headers[.cacheControl] = "no-cache"
        if request.headers[.ifNoneMatch]?.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == file.etag }) == true {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(file.bytes.count)
        let body: ResponseBody = request.method == .head ? .init() : .init(byteBuffer: ByteBuffer(bytes: file.bytes))
        return Response(status: .ok, headers: headers, body: body)
    }
}
