import Foundation

/// Every named rate limit (ARCHITECTURE 9), in one place: what it counts, per whom, and how much.
/// Each is a bucket of `capacity` requests that refills evenly over `period` (one request every
/// period/capacity), shared by every replica. `limits.rates` changes any of them; docs/API.md's
/// table lists them all. Sign-in, recovery and share-link opens are throttled by their failures
/// instead (`FailureThrottle`): a right password or link is never refused for being used often.
/// `socket-frames` is per socket, so its bucket lives with the socket on its gateway.
public enum RateLimitName: String, CaseIterable, Sendable {
    case prelogin
    case register
    case directoryName = "directory-name"
    case directoryId = "directory-id"
    case messageSend = "message-send"
    case envelopePost = "envelope-post"
    case uploadCreate = "upload-create"
    case linkCreate = "link-create"
    case callStart = "call-start"
    case socketFrames = "socket-frames"
    case inviteCheck = "invite-check"
    case inviteCreate = "invite-create"

    /// Whose requests share one bucket.
    public var scope: String {
        switch self {
        case .prelogin, .register, .inviteCheck: "address"
        case .socketFrames: "socket"
        default: "member"
        }
    }

    /// What it counts, for the documentation.
    public var summary: String {
        switch self {
        case .prelogin: "sign-in parameter requests"
        case .register: "registrations (failed ones also count against their invite)"
        case .directoryName: "directory lookups by username (each tells whether a name exists)"
        case .directoryId: "directory lookups by user id"
        case .messageSend: "messages sent"
        case .envelopePost: "key-envelope batches posted"
        case .uploadCreate: "uploads started"
        case .linkCreate: "share links created"
        case .callStart: "calls started (each rings other people's devices)"
        case .inviteCheck: "invite checks (a registration page asking whether its invite is still usable)"
        case .inviteCreate: "invites created from the browser (admins)"
        case .socketFrames: "frames a client sends on one realtime socket once signed in (typing, call signals); past it the socket closes with 4029"
        }
    }

    /// The default bucket.
    public var defaultLimit: RateLimit {
        switch self {
        case .prelogin: RateLimit(capacity: 120, period: .seconds(60))
        case .register: RateLimit(capacity: 30, period: .seconds(3600))
        case .directoryName: RateLimit(capacity: 60, period: .seconds(600))
        case .directoryId: RateLimit(capacity: 2000, period: .seconds(60))
        case .messageSend: RateLimit(capacity: 1200, period: .seconds(60))
        case .envelopePost: RateLimit(capacity: 600, period: .seconds(60))
        case .uploadCreate: RateLimit(capacity: 300, period: .seconds(3600))
        case .linkCreate: RateLimit(capacity: 300, period: .seconds(3600))
        case .callStart: RateLimit(capacity: 10, period: .seconds(60))
        case .socketFrames: RateLimit(capacity: 40, period: .seconds(4))
        case .inviteCheck: RateLimit(capacity: 60, period: .seconds(60))
        case .inviteCreate: RateLimit(capacity: 100, period: .seconds(3600))
        }
    }
}

/// A bucket: `capacity` requests at once, refilled evenly over `period`.
public struct RateLimit: Sendable, Equatable {
    public var capacity: Int
    public var period: Duration

    public init(capacity: Int, period: Duration) {
        self.capacity = capacity
        self.period = period
    }
}

/// The rate limits in force: the defaults with `limits.rates` applied.
public struct RateLimits: Sendable, Equatable {
    public var overrides: [RateLimitName: RateLimit]

    public init(overrides: [RateLimitName: RateLimit] = [:]) {
        self.overrides = overrides
    }

    public subscript(_ name: RateLimitName) -> RateLimit {
        overrides[name] ?? name.defaultLimit
    }

    /// Reads `name=capacity/duration` pairs separated by commas, as `register=10/1h,message-send=600/1m`.
    public static func parse(_ text: String) throws -> RateLimits {
        var overrides: [RateLimitName: RateLimit] = [:]
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, let name = RateLimitName(rawValue: pair[0]) else {
                throw ConfigError(.limitsRates, "names a limit that does not exist in \(part) (known: \(RateLimitName.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let bucket = pair[1].split(separator: "/", maxSplits: 1).map(String.init)
            guard bucket.count == 2, let capacity = Int(bucket[0]), (1...1_000_000).contains(capacity),
                  let period = SettingsLoader.parseDuration(bucket[1]), period >= .seconds(1), period <= .seconds(86_400) else {
                throw ConfigError(.limitsRates, "must give each limit as capacity/duration, a capacity from 1 to 1000000 over 1s to 1d, as \(name.rawValue)=\(name.defaultLimit.capacity)/1m (got \(part))")
            }
            overrides[name] = RateLimit(capacity: capacity, period: period)
        }
        return RateLimits(overrides: overrides)
    }
}
