import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// A server's connections, each closed at most `grace` after a graceful shutdown begins.
///
/// Hummingbird's WebSocket-upgrade channel only learns how to shut a connection down once its
/// first request has arrived, so a client that connects and sends nothing held up SIGTERM for as
/// long as it stayed connected (found by a process test on a loaded machine). Requests in flight
/// and sockets get the grace period to finish (the socket registry closes sockets with 1012
/// first); whatever is still open then is closed.
struct BoundedShutdownChannel<Inner: ServerChildChannel>: ServerChildChannel {
    let inner: Inner
    let grace: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
        inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Inner.Value, logger: Logger) async {
        let channel = value.channel, grace = self.grace
        await withGracefulShutdownHandler {
            await inner.handle(value: value, logger: logger)
        } onGracefulShutdown: {
            channel.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
        }
    }
}
