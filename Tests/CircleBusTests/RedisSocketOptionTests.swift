@testable import CircleBus
import CircleTestSupport
import Glibc
import NIOCore
import NIOPosix
import Testing

/// The Redis connection's socket options are set at the levels they belong to. TCP_NODELAY set at
/// the socket level is SO_DEBUG, which needs CAP_NET_ADMIN: as root the connection works, and as
/// any other user (the container's `circle`) every connection to Redis failed with EACCES.
@Suite("Redis connection socket options", .enabled(if: TestServers.redisEnabled, TestServers.redisSkipReason))
struct RedisSocketOptionTests {
    @Test("no-delay is a TCP option, keep-alive a socket option, and debugging stays off")
    func optionLevels() async throws {
        let connection = try await RedisConnection.connect(try TestServers.redisSettings(suite: "options"))
        defer { connection.close() }
        let channel = connection.channel
        #expect(try await channel.getOption(.tcpOption(.tcp_nodelay)).get() != 0)
        #expect(try await channel.getOption(.socketOption(.so_keepalive)).get() != 0)
        let debug = ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_DEBUG))
        #expect(try await channel.getOption(debug).get() == 0)
    }
}
