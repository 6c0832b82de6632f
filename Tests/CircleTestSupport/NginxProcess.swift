import Foundation

/// A private nginx on loopback routing like deploy/nginx.conf: the realtime socket and
/// everything else to the gateways, `/api/v1/conversations` to the messaging replicas. A failed
/// connection moves on to the next replica (requests are idempotent by client-chosen ids).
public final class NginxProcess: @unchecked Sendable {
    public let port: Int
    public let folder: URL
    let process: ChildProcess

    /// `extra`: more nginx directives for the server block, placed before the routes (a test
    /// playing a server that answers one path with another's content).
    public init(gateways: [Int], messaging: [Int], extra: String = "") throws {
        port = try FreePort.find()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-nginx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        func upstream(_ name: String, _ ports: [Int]) -> String {
            "upstream \(name) {\n" + ports.map { "        server 127.0.0.1:\($0) max_fails=1 fail_timeout=2s;\n" }.joined() + "    }"
        }
        let prefix = folder.path
        let config = """
            \(getuid() == 0 ? "user root;" : "")
            worker_processes 1;
            pid \(prefix)/nginx.pid;
            error_log \(prefix)/error.log warn;
            events { worker_connections 1024; }
            http {
                access_log off;
                client_body_temp_path \(prefix)/tmp/body;
                proxy_temp_path \(prefix)/tmp/proxy;
                fastcgi_temp_path \(prefix)/tmp/fastcgi;
                uwsgi_temp_path \(prefix)/tmp/uwsgi;
                scgi_temp_path \(prefix)/tmp/scgi;
                map $http_upgrade $connection_upgrade { default upgrade; '' close; }
                \(upstream("gateway", gateways))
                \(upstream("messaging", messaging))
                server {
                    listen 127.0.0.1:\(port);
                    client_max_body_size 2m;
                    proxy_http_version 1.1;
                    proxy_next_upstream error timeout non_idempotent;
                    proxy_next_upstream_tries 3;
                    \(extra)
                    location = /api/v1/events {
                        proxy_pass http://gateway;
                        proxy_set_header Upgrade $http_upgrade;
                        proxy_set_header Connection $connection_upgrade;
                        proxy_read_timeout 120s;
                    }
                    location /api/v1/conversations { proxy_pass http://messaging; proxy_set_header Connection ""; }
                    location / { proxy_pass http://gateway; proxy_set_header Connection ""; }
                }
            }
            """
        let configURL = folder.appendingPathComponent("nginx.conf")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        process = try ChildProcess("/usr/sbin/nginx", ["-c", configURL.path, "-p", prefix, "-g", "daemon off;"])
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Waits (up to 5 s) until nginx answers `path` through to its upstream.
    public func waitUntilServing(_ path: String = "/healthz") async throws {
        for _ in 0..<50 {
            if let reply = try? await HTTPProbe.request("GET", baseURL + path, body: nil, headers: [:]), reply.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("nginx on \(port) did not serve \(path) within 5 s")
    }

    public func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(at: folder)
    }
}
