import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Where an S3-compatible bucket is and how to sign for it.
package struct S3Location: Sendable, Equatable {
    /// http(s)://host[:port] of the service; objects are addressed path-style (endpoint/bucket/key),
    /// which MinIO, Ceph RGW, Garage and AWS all accept.
    package var endpoint: String
    package var bucket: String
    package var region: String
    package var accessKey: String
    package var secretKey: String

    package init(endpoint: String, bucket: String, region: String, accessKey: String, secretKey: String) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.bucket = bucket
        self.region = region
        self.accessKey = accessKey
        self.secretKey = secretKey
    }
}

/// An answer from the object store that was not what the call needed.
package struct S3Error: Error, CustomStringConvertible {
    package let status: Int
    /// S3's error code (NoSuchKey, NoSuchUpload, EntityTooSmall, ...), when it sent one.
    package let code: String?
    package let message: String?
    package let operation: String

    package init(status: Int, code: String?, message: String?, operation: String) {
        self.status = status
        self.code = code
        self.message = message
        self.operation = operation
    }

    package var description: String {
        "S3 \(operation) failed: HTTP \(status)" + (code.map { " \($0)" } ?? "") + (message.map { ": \($0)" } ?? "")
    }
}

/// One uploaded part of a multipart upload.
package struct S3Part: Sendable, Equatable {
    package let number: Int
    package let etag: String
    package let size: Int64
}

/// The few S3 calls the vault needs, signed with SigV4, over AsyncHTTPClient. Keys are made by
/// the caller from checked names; the client encodes them for the URL and the signature alike.
package final class S3Client: Sendable {
    package let location: S3Location
    let signer: SigV4Signer
    let http: HTTPClient
    let host: String

    package init(location: S3Location) throws {
        guard let url = URL(string: location.endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme), let name = url.host else {
            throw S3Error(status: 0, code: nil, message: "the endpoint \(location.endpoint) is not an http(s) URL", operation: "configure")
        }
        self.location = location
        self.host = url.port.map { "\(name):\($0)" } ?? name
        self.signer = SigV4Signer(accessKey: location.accessKey, secretKey: location.secretKey, region: location.region)
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        configuration.redirectConfiguration = .disallow
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    package func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: objects

    package func putObject(_ key: String, body: ByteBuffer) async throws {
        let response = try await send("PUT", key: key, body: body, operation: "PutObject")
        try await expect(response, [200], "PutObject")
    }

    /// The object's bytes, or nil when there is no such key (for small objects the store reads whole).
    package func getObject(_ key: String, limit: Int) async throws -> ByteBuffer? {
        let response = try await send("GET", key: key, operation: "GetObject")
        if response.status == .notFound { _ = try? await response.body.collect(upTo: 64 << 10); return nil }
        try await expect(response, [200], "GetObject", drain: false)
        return try await response.body.collect(upTo: limit)
    }

    /// The object's bytes in `range` (all of them without one), streamed as they arrive.
    package func streamObject(_ key: String, range: ClosedRange<Int64>?) async throws -> HTTPClientResponse.Body {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        let response = try await send("GET", key: key, headers: headers, operation: "GetObject")
        try await expect(response, range == nil ? [200] : [206], "GetObject", drain: false)
        return response.body
    }

    /// The object's size, or nil when there is no such key.
    package func headObject(_ key: String) async throws -> Int64? {
        let response = try await send("HEAD", key: key, operation: "HeadObject")
        if response.status == .notFound { return nil }
        try await expect(response, [200], "HeadObject")
        return response.headers.first(name: "content-length").flatMap { Int64($0) }
    }

    /// Deletes the object; deleting one that is not there succeeds too.
    package func deleteObject(_ key: String) async throws {
        let response = try await send("DELETE", key: key, operation: "DeleteObject")
        try await expect(response, [200, 204, 404], "DeleteObject")
    }

    /// Keys, sizes and last-modified times under `prefix`, in key order, all pages.
    package func list(prefix: String) async throws -> [(key: String, size: Int64, modified: Date)] {
        var out: [(key: String, size: Int64, modified: Date)] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try await send("GET", key: nil, query: query, operation: "ListObjectsV2")
            let xml = try await text(response, "ListObjectsV2")
            for entry in XMLFields.blocks("Contents", in: xml) {
                guard let key = XMLFields.first("Key", in: entry), let size = XMLFields.first("Size", in: entry).flatMap({ Int64($0) }) else { continue }
                let modified = XMLFields.first("LastModified", in: entry).flatMap(Self.parseTime) ?? Date()
                out.append((key, size, modified))
            }
            token = XMLFields.first("IsTruncated", in: xml) == "true" ? XMLFields.first("NextContinuationToken", in: xml) : nil
        } while token != nil
        return out
    }

    // MARK: multipart uploads

    package func createMultipartUpload(_ key: String) async throws -> String {
        let response = try await send("POST", key: key, query: [("uploads", "")], operation: "CreateMultipartUpload")
        let xml = try await text(response, "CreateMultipartUpload")
        guard let id = XMLFields.first("UploadId", in: xml), !id.isEmpty else {
            throw S3Error(status: 200, code: nil, message: "no UploadId in the answer", operation: "CreateMultipartUpload")
        }
        return id
    }

    /// Stores part `number` (replacing an earlier part of that number); returns its ETag.
    package func uploadPart(_ key: String, uploadId: String, number: Int, body: ByteBuffer) async throws -> String {
        let response = try await send("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)], body: body, operation: "UploadPart")
        try await expect(response, [200], "UploadPart")
        guard let etag = response.headers.first(name: "etag") else {
            throw S3Error(status: 200, code: nil, message: "no ETag for part \(number)", operation: "UploadPart")
        }
        return etag
    }

    /// The parts uploaded so far, by number (the latest of each number).
    package func listParts(_ key: String, uploadId: String) async throws -> [S3Part] {
        var out: [S3Part] = []
        var marker: String?
        repeat {
            var query = [("uploadId", uploadId)]
            if let marker { query.append(("part-number-marker", marker)) }
            let response = try await send("GET", key: key, query: query, operation: "ListParts")
            let xml = try await text(response, "ListParts")
            for entry in XMLFields.blocks("Part", in: xml) {
                guard let number = XMLFields.first("PartNumber", in: entry).flatMap({ Int($0) }), let etag = XMLFields.first("ETag", in: entry),
                      let size = XMLFields.first("Size", in: entry).flatMap({ Int64($0) }) else { continue }
                out.append(S3Part(number: number, etag: etag, size: size))
            }
            marker = XMLFields.first("IsTruncated", in: xml) == "true" ? XMLFields.first("NextPartNumberMarker", in: xml) : nil
        } while marker != nil
        return out.sorted { $0.number < $1.number }
    }

    /// Makes the listed parts the object, atomically: before this the key does not exist.
    package func completeMultipartUpload(_ key: String, uploadId: String, parts: [S3Part]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for part in parts { xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(XMLFields.escape(part.etag))</ETag></Part>" }
        xml += "</CompleteMultipartUpload>"
        let response = try await send("POST", key: key, query: [("uploadId", uploadId)], body: ByteBuffer(string: xml), operation: "CompleteMultipartUpload")
        // S3 may answer 200 and report the failure in the body.
        let answer = try await text(response, "CompleteMultipartUpload")
        if answer.contains("<Error>") { throw Self.error(200, answer, "CompleteMultipartUpload") }
    }

    /// Discards the upload and its parts; one that is not there (completed or aborted) succeeds too.
    package func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        let response = try await send("DELETE", key: key, query: [("uploadId", uploadId)], operation: "AbortMultipartUpload")
        try await expect(response, [200, 204, 404], "AbortMultipartUpload")
    }

    /// Multipart uploads begun and neither completed nor aborted, with when each began, all pages.
    package func listMultipartUploads(prefix: String) async throws -> [(key: String, uploadId: String, initiated: Date)] {
        var out: [(key: String, uploadId: String, initiated: Date)] = []
        var markers: (key: String, id: String)?
        repeat {
            var query = [("uploads", ""), ("prefix", prefix)]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.id)] }
            let response = try await send("GET", key: nil, query: query, operation: "ListMultipartUploads")
            let xml = try await text(response, "ListMultipartUploads")
            for entry in XMLFields.blocks("Upload", in: xml) {
                guard let key = XMLFields.first("Key", in: entry), let id = XMLFields.first("UploadId", in: entry) else { continue }
                out.append((key, id, XMLFields.first("Initiated", in: entry).flatMap(Self.parseTime) ?? Date()))
            }
            if XMLFields.first("IsTruncated", in: xml) == "true", let key = XMLFields.first("NextKeyMarker", in: xml),
               let id = XMLFields.first("NextUploadIdMarker", in: xml) {
                markers = (key, id)
            } else {
                markers = nil
            }
        } while markers != nil
        return out
    }

    /// S3's times (2026-12-03T10:00:00.000Z), with or without fractions of a second.
    static func parseTime(_ text: String) -> Date? {
        let whole = text.split(separator: ".").first.map { String($0).hasSuffix("Z") ? String($0) : String($0) + "Z" } ?? text
        return ISO8601DateFormatter().date(from: whole)
    }

    // MARK: buckets

    /// Whether the bucket exists and these credentials may use it.
    package func bucketExists() async throws -> Bool {
        let response = try await send("HEAD", key: nil, operation: "HeadBucket")
        if response.status == .notFound { return false }
        try await expect(response, [200], "HeadBucket")
        return true
    }

    package func createBucket() async throws {
        let response = try await send("PUT", key: nil, operation: "CreateBucket")
        try await expect(response, [200], "CreateBucket")
    }

    // MARK: requests

    /// Signs and sends one request; the answer's body is the caller's to read.
    func send(_ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
              body: ByteBuffer? = nil, operation: String) async throws -> HTTPClientResponse {
        let path = "/" + location.bucket + (key.map { "/" + $0 } ?? "")
        let payloadHash = body.map { buffer in buffer.withUnsafeReadableBytes { SigV4Signer.hex(SHA256.hash(data: $0)) } } ?? SigV4Signer.emptyPayloadHash
        let date = Date()
        var headers = extra + [("host", host), ("x-amz-date", SigV4Signer.stamps(date).amzDate), ("x-amz-content-sha256", payloadHash)]
        let authorization = signer.authorization(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash, date: date)
        headers.append(("authorization", authorization))
        let encodedPath = path.split(separator: "/", omittingEmptySubsequences: false).map { SigV4Signer.encode(String($0)) }.joined(separator: "/")
        let encodedQuery = query.map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        var request = HTTPClientRequest(url: location.endpoint + encodedPath + (query.isEmpty ? "" : "?" + encodedQuery))
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers where name != "host" { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(body)
        } else if method == "PUT" || method == "POST" {
            request.headers.add(name: "content-length", value: "0")
        }
        do {
            return try await http.execute(request, timeout: .seconds(60))
        } catch {
            throw S3Error(status: 0, code: nil, message: "\(error)", operation: operation)
        }
    }

    /// Checks the status; unless the caller reads the body (`drain: false`), reads it to the end so
    /// the connection goes back to the pool.
    func expect(_ response: HTTPClientResponse, _ statuses: Set<UInt>, _ operation: String, drain: Bool = true) async throws {
        guard statuses.contains(response.status.code) else {
            let body = (try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) } ?? ""
            throw Self.error(Int(response.status.code), body, operation)
        }
        if drain { _ = try await response.body.collect(upTo: 1 << 20) }
    }

    func text(_ response: HTTPClientResponse, _ operation: String) async throws -> String {
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status.code == 200 else { throw Self.error(Int(response.status.code), String(buffer: body), operation) }
        return String(buffer: body)
    }

    static func error(_ status: Int, _ body: String, _ operation: String) -> S3Error {
        S3Error(status: status, code: XMLFields.first("Code", in: body), message: XMLFields.first("Message", in: body), operation: operation)
    }
}

/// Reads the few fields S3's XML answers carry. The answers are flat records of simple elements,
/// so finding `<Name>…</Name>` is enough, and avoids linking an XML parser (libxml2) into the vault.
enum XMLFields {
    /// The inner text of each `<name>…</name>` in `xml`, in order.
    static func blocks(_ name: String, in xml: String) -> [String] {
        var out: [String] = []
        var rest = xml[...]
        let open = "<\(name)>", close = "</\(name)>"
        while let start = rest.range(of: open), let end = rest.range(of: close, range: start.upperBound..<rest.endIndex) {
            out.append(String(rest[start.upperBound..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return out
    }

    static func first(_ name: String, in xml: String) -> String? {
        blocks(name, in: xml).first.map(unescape)
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
