import CircleCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension Problem: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: self.statusCode) }

    public var headers: HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = "application/problem+json"
        for (name, value) in self.extraHeaders {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return fields
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: jsonBody)))
    }

    /// The RFC 9457 body.
    public var jsonBody: String {
        let fields: [(String, String)] = [
            ("type", typeURI), ("title", title), ("status", String(statusCode)), ("detail", detail),
        ]
        return "{" + fields.map { name, value in
            name == "status" ? "\"\(name)\":\(value)" : "\"\(name)\":\(JSONText.quote(value))"
        }.joined(separator: ",") + "}"
    }
}
