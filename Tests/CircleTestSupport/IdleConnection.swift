import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection to a local port that never sends a byte: a client that connected and went
/// quiet before its first request.
public final class IdleConnection: Sendable {
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

    public func close() {
        _ = Glibc.close(descriptor)
    }
}
