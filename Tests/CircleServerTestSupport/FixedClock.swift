import CircleCore

/// A clock that says what the test says.
package struct FixedClock: WallClock {
    package let time: Timestamp
    package init(_ time: Timestamp) { self.time = time }
    package func now() -> Timestamp { time }
}
