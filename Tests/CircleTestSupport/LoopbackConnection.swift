import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to a local port, for bytes no HTTP or WebSocket client would send
/// (or none at all: a client that connected and went quiet before its first request).
public final class LoopbackConnection: Sendable {
    private let descriptor: Int32

    public init(port: Int) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSupportError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            _ = Glibc.close(descriptor)
            throw TestSupportError("connect to port \(port) failed")
        }
        self.descriptor = descriptor
    }

    /// Writes all of `bytes` (blocking).
    public func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            guard n > 0 else { throw TestSupportError("write failed") }
            sent += n
        }
    }

    public func close() {
        _ = Glibc.close(descriptor)
    }
}
