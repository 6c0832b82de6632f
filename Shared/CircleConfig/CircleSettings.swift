import CircleCore
import Configuration
import Foundation
import Logging

/// Where a process keeps its durable state.
public enum DatabaseSettings: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresSettings)
}

/// A parsed PostgreSQL URL; `description` never shows the password.
public struct PostgresSettings: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool
    public var poolSize: Int

    public init(host: String, port: Int, username: String, password: String?, database: String, requireTLS: Bool, poolSize: Int) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
        self.poolSize = poolSize
    }

    public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }

    /// The same server, another database (tests create one database per suite).
    public func with(database: String) -> PostgresSettings {
        var copy = self
        copy.database = database
        return copy
    }

    /// Parses `postgres://user:password@host:port/database?sslmode=disable|require`.
    public static func parse(_ text: String, poolSize: Int = 10) throws -> PostgresSettings {
        let key = CircleConfigKey.postgresURL
        guard let url = URLComponents(string: text), let scheme = url.scheme else {
            throw ConfigError(key, "not a URL; expected postgres://user:password@host:port/database")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw ConfigError(key, "scheme must be postgres:// (got \(scheme)://)")
        }
        guard let host = url.host, !host.isEmpty else { throw ConfigError(key, "the URL has no host") }
        guard let user = url.user, !user.isEmpty else { throw ConfigError(key, "the URL has no user name") }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty, !database.contains("/") else {
            throw ConfigError(key, "the URL must name one database, as in postgres://user@host:5432/circle")
        }
        var requireTLS = false
        for item in url.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "disable"): requireTLS = false
            case ("sslmode", "require"): requireTLS = true
            case ("sslmode", let other): throw ConfigError(key, "sslmode must be disable or require (got \(other ?? "nothing"))")
            default: throw ConfigError(key, "unknown URL parameter \(item.name); only sslmode is read")
            }
        }
        return PostgresSettings(
            host: host, port: url.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: url.password.map { $0.removingPercentEncoding ?? $0 }, database: database,
            requireTLS: requireTLS, poolSize: poolSize
        )
    }
}

/// A parsed Redis URL plus the key prefix; `description` never shows the password.
public struct RedisSettings: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int
    public var prefix: String

    public init(host: String, port: Int, password: String? = nil, database: Int = 0, prefix: String = "circle:") {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
        self.prefix = prefix
    }

    public var description: String { "redis://\(host):\(port)/\(database)" }

    /// Parses `redis://[:password@]host:port[/db]`.
    public static func parse(_ text: String, prefix: String = "circle:") throws -> RedisSettings {
        let key = CircleConfigKey.redisURL
        guard let url = URLComponents(string: text), let scheme = url.scheme else {
            throw ConfigError(key, "not a URL; expected redis://host:port")
        }
        guard scheme == "redis" else {
            throw ConfigError(key, "scheme must be redis:// (got \(scheme)://; TLS to Redis is not supported)")
        }
        guard let host = url.host, !host.isEmpty else { throw ConfigError(key, "the URL has no host") }
        var database = 0
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        if !path.isEmpty {
            guard let index = Int(path), (0...15).contains(index) else {
                throw ConfigError(key, "the path must be a database number from 0 to 15")
            }
            database = index
        }
        if let items = url.queryItems, let first = items.first {
            throw ConfigError(key, "unknown URL parameter \(first.name)")
        }
        let password = url.password.map { $0.removingPercentEncoding ?? $0 }
        return RedisSettings(host: host, port: url.port ?? 6379, password: password, database: database, prefix: prefix)
    }
}

/// The HTTP listener.
public struct HTTPSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var bodyLimit: Int

    public init(host: String = "127.0.0.1", port: Int, bodyLimit: Int = 1 << 20) {
        self.host = host
        self.port = port
        self.bodyLimit = bodyLimit
    }
}

/// Logging.
public struct LogSettings: Sendable, Equatable {
    public var level: Logger.Level
    public var format: LogFormat

    public init(level: Logger.Level = .info, format: LogFormat = .text) {
        self.level = level
        self.format = format
    }
}

/// Everything a Circle process is configured with.
public struct CircleSettings: Sendable, Equatable {
    public var http: HTTPSettings
    public var database: DatabaseSettings
    /// `nil` means the in-process bus (embedded mode).
    public var redis: RedisSettings?
    public var log: LogSettings
    public var sessions: SessionLifetime
    public var rateLimits: RateLimits
    /// Lets /metrics answer other machines that present it; nil: loopback connections only.
    public var metricsToken: String?

    public init(http: HTTPSettings, database: DatabaseSettings, redis: RedisSettings?, log: LogSettings, sessions: SessionLifetime = SessionLifetime(),
                rateLimits: RateLimits = RateLimits(), metricsToken: String? = nil) {
        self.metricsToken = metricsToken
        self.http = http
        self.database = database
        self.redis = redis
        self.log = log
        self.sessions = sessions
        self.rateLimits = rateLimits
    }

    /// Whether this is the scaled mode (PostgreSQL and Redis).
    public var isScaled: Bool { redis != nil }
}

/// How long a session lasts (every service checks it on each request).
public struct SessionLifetime: Sendable, Equatable {
    /// A session unused this long ends.
    public var idleTimeout: Duration
    /// A session ends this long after it was created.
    public var maxAge: Duration

    public init(idleTimeout: Duration = .seconds(30 * 86_400), maxAge: Duration = .seconds(180 * 86_400)) {
        self.idleTimeout = idleTimeout
        self.maxAge = maxAge
    }
}

/// Which process is reading its configuration; decides defaults and what is required.
public enum ProcessRole: Sendable, Equatable {
    /// `circle serve` and the admin commands: embedded by default, scaled when both URLs are given.
    case embedded
    /// A service executable: PostgreSQL and Redis are required.
    case service(port: Int)
}

/// Reads and validates `CircleSettings` from a `ConfigReader`.
public enum SettingsLoader {
    /// Reads every key; the first invalid one throws a `ConfigError` naming it.
    public static func load(from reader: ConfigReader, role: ProcessRole) throws -> CircleSettings {
        func string(_ key: CircleConfigKey) -> String? {
            guard let value = reader.string(forKey: ConfigKey(key.rawValue), isSecret: key.isSecret) else { return nil }
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty ? nil : trimmed
        }
        func int(_ key: CircleConfigKey, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let text = string(key) else { return value }
            guard let number = Int(text) else { throw ConfigError(key, "must be a whole number (got \(text))") }
            guard range.contains(number) else {
                throw ConfigError(key, "must be between \(range.lowerBound) and \(range.upperBound) (got \(number))")
            }
            return number
        }

        let defaultPort: Int
        switch role {
        case .embedded: defaultPort = 8080
        case .service(let port): defaultPort = port
        }
        let host = string(.httpHost) ?? "127.0.0.1"
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == ":" || $0 == "-" }) else {
            throw ConfigError(.httpHost, "must be an IP address or host name (got \(host))")
        }
        let http = HTTPSettings(
            host: host,
            port: try int(.httpPort, default: defaultPort, range: 0...65535),
            bodyLimit: try int(.httpBodyLimit, default: 1 << 20, range: 1024...(64 << 20))
        )

        let log = try loadLog(from: reader)

        let poolSize = try int(.postgresPoolSize, default: 10, range: 1...200)
        let prefix = string(.redisPrefix) ?? "circle:"
        guard prefix.count <= 64, !prefix.contains(where: { $0.isWhitespace }) else {
            throw ConfigError(.redisPrefix, "must be at most 64 characters without spaces")
        }
        let postgres = try string(.postgresURL).map { try PostgresSettings.parse($0, poolSize: poolSize) }
        let redis = try string(.redisURL).map { try RedisSettings.parse($0, prefix: prefix) }

        func duration(_ key: CircleConfigKey, default value: Duration) throws -> Duration {
            guard let text = string(key) else { return value }
            guard let parsed = parseDuration(text), parsed >= .seconds(60), parsed <= .seconds(3650 * 86_400) else {
                throw ConfigError(key, "must be a duration from 1m to 3650d such as 12h or 30d (got \(text))")
            }
            return parsed
        }
        let sessions = SessionLifetime(idleTimeout: try duration(.sessionsIdleTimeout, default: .seconds(30 * 86_400)),
                                       maxAge: try duration(.sessionsMaxAge, default: .seconds(180 * 86_400)))
        let rateLimits = try RateLimits.parse(string(.limitsRates) ?? "")
        let metricsToken = string(.metricsToken)
        if let metricsToken, metricsToken.count < 32 || metricsToken.contains(where: { $0.isWhitespace }) {
            throw ConfigError(.metricsToken, "must be at least 32 characters without spaces (for example from `openssl rand -base64 32`)")
        }

        switch (role, postgres, redis) {
        case (_, let postgres?, let redis?):
            return CircleSettings(http: http, database: .postgres(postgres), redis: redis, log: log, sessions: sessions, rateLimits: rateLimits, metricsToken: metricsToken)
        case (.service, nil, _):
            throw ConfigError(.postgresURL, "is required: the service executables run on PostgreSQL (use `circle serve` for the embedded mode)")
        case (.service, _, nil):
            throw ConfigError(.redisURL, "is required: the service executables coordinate through Redis (use `circle serve` for the embedded mode)")
        case (.embedded, _?, nil):
            throw ConfigError(.redisURL, "is required with postgres.url: the scaled mode needs both")
        case (.embedded, nil, _?):
            throw ConfigError(.postgresURL, "is required with redis.url: the scaled mode needs both")
        case (.embedded, nil, nil):
            let path = string(.sqlitePath) ?? "./data/circle.sqlite"
            return CircleSettings(http: http, database: .sqlite(path: path), redis: nil, log: log, sessions: sessions, rateLimits: rateLimits, metricsToken: metricsToken)
        }
    }

    /// Reads only the logging keys.
    public static func loadLog(from reader: ConfigReader) throws -> LogSettings {
        let levelText = reader.string(forKey: ConfigKey(CircleConfigKey.logLevel.rawValue)) ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ConfigError(.logLevel, "must be one of trace, debug, info, notice, warning, error, critical (got \(levelText))")
        }
        let formatText = reader.string(forKey: ConfigKey(CircleConfigKey.logFormat.rawValue)) ?? "text"
        guard let format = LogFormat(rawValue: formatText.lowercased()) else {
            throw ConfigError(.logFormat, "must be text or json (got \(formatText))")
        }
        return LogSettings(level: level, format: format)
    }

    /// Reads only what migrations need: the database (PostgreSQL if given, else SQLite).
    public static func loadDatabase(from reader: ConfigReader) throws -> DatabaseSettings {
        if let url = reader.string(forKey: ConfigKey(CircleConfigKey.postgresURL.rawValue), isSecret: true),
           !url.trimmingCharacters(in: .whitespaces).isEmpty {
            return .postgres(try PostgresSettings.parse(url.trimmingCharacters(in: .whitespaces)))
        }
        let path = reader.string(forKey: ConfigKey(CircleConfigKey.sqlitePath.rawValue)) ?? "./data/circle.sqlite"
        return .sqlite(path: path)
    }
}
