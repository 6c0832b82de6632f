import Crypto
import Foundation

/// The browser client (Web/ of the repository), built into the binary by the EmbedWebClient
/// plugin, so one executable copied anywhere serves it. `web.root` serves a folder instead
/// (development: edits show on reload).
public enum WebClient {
    public struct File: Sendable {
        public let bytes: [UInt8]
        public let contentType: String
        /// A strong validator of the content (for If-None-Match).
        public let etag: String
    }

    /// The files by path from Web/ (`/index.html`, `/js/app.js`, ...).
    public static let files: [String: File] = {
        var files: [String: File] = [:]
        for (path, base64) in EmbeddedFiles.all { files[path] = file(path, Array(Data(base64Encoded: base64) ?? Data())) }
        return files
    }()

    static func file(_ path: String, _ bytes: [UInt8]) -> File {
        let digest = SHA256.hash(data: bytes).prefix(12).map { String(format: "%02x", $0) }.joined()
        return File(bytes: bytes, contentType: contentType(of: path), etag: "\"\(digest)\"")
    }

    /// The media type for a file name, as browsers need it for modules, styles and images.
    public static func contentType(of path: String) -> String {
        switch (path as NSString).pathExtension.lowercased() {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "json", "webmanifest": "application/json"
        case "png": "image/png"
        case "woff2": "font/woff2"
        case "ico": "image/x-icon"
        default: "application/octet-stream"
        }
    }
}
