import CircleCore
import Synchronization

/// A clock the test moves forward.
package final class StepClock: WallClock {
    private let time: Mutex<Timestamp>

    package init(_ start: Timestamp = Timestamp(millis: 1_000_000)) {
        time = Mutex(start)
    }

    package func now() -> Timestamp { time.withLock { $0 } }

    package func advance(seconds: Int64) {
        time.withLock { $0 = Timestamp(millis: $0.millis + seconds * 1000) }
    }
}
