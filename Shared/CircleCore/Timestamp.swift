#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Wall-clock time as the database stores it: milliseconds since the Unix epoch.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var millis: Int64

    public init(millis: Int64) { self.millis = millis }

    public init(_ date: Date) { self.millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    public static func now() -> Timestamp { Timestamp(Date()) }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.millis < rhs.millis }

    public func adding(seconds: Int64) -> Timestamp { Timestamp(millis: millis + seconds * 1000) }
    public func adding(milliseconds: Int64) -> Timestamp { Timestamp(millis: millis + milliseconds) }

    public var date: Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

    public var description: String { String(millis) }

    public init(from decoder: any Decoder) throws { millis = try decoder.singleValueContainer().decode(Int64.self) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(millis)
    }
}

/// The source of wall-clock time, injected so that expiry logic is testable without sleeping.
public protocol WallClock: Sendable {
    func now() -> Timestamp
}

/// The real clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Timestamp { .now() }
}
