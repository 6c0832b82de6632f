import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A JSON response with an explicit status.
public struct JSONResponse<Body: Encodable & Sendable>: ResponseGenerator {
    public let status: HTTPResponse.Status
    public let body: Body

    public init(_ body: Body, status: HTTPResponse.Status = .ok) {
        self.body = body
        self.status = status
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(body)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}
