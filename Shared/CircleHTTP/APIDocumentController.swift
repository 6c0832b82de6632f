import CircleAPIDocument
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/v1/openapi.json`: the API contract (docs/openapi.yaml as JSON), from every process,
/// to anyone (it describes the API, nothing of anyone's data).
public enum APIDocumentController {
    public static let path = "/api/v1/openapi.json"

    public static func addRoutes(to router: Router<CircleRequestContext>) {
        let body = ByteBuffer(string: APIDocument.json)
        router.get(RouterPath(path)) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
    }
}
