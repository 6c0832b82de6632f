import AsyncHTTPClient
import Foundation
import NIOCore

/// Small HTTP helpers for tests against real processes.
public enum HTTPProbe {
    public struct Reply: Sendable {
        public let status: Int
        public let headers: [String: String]
        public let body: String
        /// The body as bytes (downloads).
        public let bytes: [UInt8]
    }

    /// One request; throws only when nothing answers.
    public static func request(_ method: String = "GET", _ url: String, body: String? = nil, headers: [String: String] = [:]) async throws -> Reply {
        try await request(method, url, bytes: body.map { Array($0.utf8) }, headers: headers)
    }

    /// One request with a binary body; throws only when nothing answers.
    public static func request(_ method: String = "GET", _ url: String, bytes: [UInt8]?, headers: [String: String] = [:]) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let bytes { request.body = .bytes(ByteBuffer(bytes: bytes)) }
        // Generous: on a loaded machine (the whole suite runs in parallel, and SQLite's commits
        // wait for the disk) an answer has taken more than 10 s; no test measures speed here.
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 16 << 20)
        var headerMap: [String: String] = [:]
        for header in response.headers { headerMap[header.name.lowercased()] = header.value }
        ResponseRecorder.record(method: method, url: url, status: Int(response.status.code), headers: headerMap, body: Array(buffer.readableBytesView))
        return Reply(status: Int(response.status.code), headers: headerMap, body: String(buffer: buffer), bytes: Array(buffer.readableBytesView))
    }

    /// Polls `url` until it answers `status` or the timeout passes; returns the last reply.
    @discardableResult
    public static func waitFor(_ url: String, status: Int = 200, timeout: Duration = .seconds(30), while alive: () -> Bool = { true }) async throws -> Reply {
        let deadline = ContinuousClock.now + timeout
        var last: Reply?
        while ContinuousClock.now < deadline, alive() {
            if let reply = try? await request("GET", url) {
                last = reply
                if reply.status == status { return reply }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("\(url) did not answer \(status) in time (last: \(last.map { "\($0.status) \($0.body)" } ?? "no answer"))")
    }
}
