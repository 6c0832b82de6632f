import Foundation
import Synchronization

/// With `CIRCLE_API_RECORD=<file>`, every answer a test gets over HTTP is appended to that file
/// as one JSON line `{method, path, status, contentType, body?}` (JSON bodies only, the first
/// MiB). `make test` sets it; Tests/Deploy/test_openapi.py then checks every recorded answer
/// against docs/openapi.yaml: its status documented for the route, its body valid by the schema.
enum ResponseRecorder {
    private static let file: Mutex<FileHandle?> = Mutex({
        guard let path = ProcessInfo.processInfo.environment["CIRCLE_API_RECORD"], !path.isEmpty else { return nil }
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        let handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
        return handle
    }())

    static func record(method: String, url: String, status: Int, headers: [String: String], body: [UInt8]) {
        file.withLock { handle in
            guard let handle, let components = URLComponents(string: url) else { return }
            let contentType = headers["content-type"] ?? ""
            var entry: [String: Any] = ["method": method, "path": components.path, "status": status, "contentType": contentType]
            if let query = components.query { entry["query"] = query }
            if contentType.contains("json"), body.count <= 1 << 20 { entry["body"] = String(decoding: body, as: UTF8.self) }
            guard var line = try? JSONSerialization.data(withJSONObject: entry) else { return }
            line.append(0x0A)
            handle.write(line)
        }
    }
}
