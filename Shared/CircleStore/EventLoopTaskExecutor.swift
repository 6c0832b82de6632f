import NIOCore

/// A Swift task executor that runs jobs on one NIO event loop.
///
/// A store call runs with a preference for its connection's event loop: the reply to each
/// statement then resumes the caller on the thread that read it, and the next statement is
/// written from there, instead of two thread hops (event loop to the concurrency pool and back,
/// each a wake-up) per round trip. Actor-isolated code keeps its own executor.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
