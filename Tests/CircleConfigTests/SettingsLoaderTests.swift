import CircleConfig
import Configuration
import Foundation
import Testing

@Suite("Configuration")
struct SettingsLoaderTests {
    func load(_ commandLine: [CircleConfigKey: String] = [:], env: [String: String] = [:], role: ProcessRole = .embedded) throws -> CircleSettings {
        try SettingsLoader.load(from: ConfigSources.reader(commandLine: commandLine, environment: env), role: role)
    }

    func error(_ commandLine: [CircleConfigKey: String] = [:], env: [String: String] = [:], role: ProcessRole = .embedded) -> ConfigError? {
        do {
            _ = try load(commandLine, env: env, role: role)
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test("no configuration at all gives the embedded default")
    func embeddedDefault() throws {
        let settings = try load()
        #expect(settings.http == HTTPSettings(host: "127.0.0.1", port: 8080, bodyLimit: 1 << 20))
        #expect(settings.database == .sqlite(path: "./data/circle.sqlite"))
        #expect(settings.redis == nil)
        #expect(!settings.isScaled)
        #expect(settings.log == LogSettings(level: .info, format: .text))
    }

    @Test("the command line wins over the environment, which wins over defaults")
    func precedence() throws {
        let settings = try load([.httpPort: "9001"], env: ["HTTP_PORT": "9002", "HTTP_HOST": "0.0.0.0", "LOG_FORMAT": "json"])
        #expect(settings.http.port == 9001)
        #expect(settings.http.host == "0.0.0.0")
        #expect(settings.log.format == .json)
    }

    @Test("both URLs select the scaled mode")
    func scaledMode() throws {
        let settings = try load(env: [
            "POSTGRES_URL": "postgres://circle:s3cret@db.internal:5433/circle?sslmode=require",
            "REDIS_URL": "redis://:pw@cache:6380/2", "REDIS_PREFIX": "prod:",
        ])
        #expect(settings.isScaled)
        #expect(settings.database == .postgres(PostgresSettings(host: "db.internal", port: 5433, username: "circle", password: "s3cret", database: "circle", requireTLS: true, poolSize: 10)))
        #expect(settings.redis == RedisSettings(host: "cache", port: 6380, password: "pw", database: 2, prefix: "prod:"))
        #expect(!"\(settings.database)".contains("s3cret"))
        #expect(!"\(settings.redis!)".contains("pw"))
    }

    @Test("a service executable uses its own port and requires PostgreSQL and Redis")
    func serviceRole() throws {
        #expect(error(role: .service(port: 8082))?.key == "postgres.url")
        #expect(error(env: ["POSTGRES_URL": "postgres://u@h/d"], role: .service(port: 8082))?.key == "redis.url")
        let settings = try load(env: ["POSTGRES_URL": "postgres://u@h/d", "REDIS_URL": "redis://h"], role: .service(port: 8082))
        #expect(settings.http.port == 8082)
    }

    @Test("half of the scaled mode is refused, naming the missing key")
    func halfScaled() {
        #expect(error(env: ["POSTGRES_URL": "postgres://u@h/d"])?.key == "redis.url")
        #expect(error(env: ["REDIS_URL": "redis://h"])?.key == "postgres.url")
    }

    @Test("invalid values are refused with the key named and no secret echoed", arguments: [
        ([CircleConfigKey.httpPort: "eighty"], "http.port"),
        ([.httpPort: "70000"], "http.port"),
        ([.httpHost: "bad host!"], "http.host"),
        ([.httpBodyLimit: "12"], "http.bodyLimit"),
        ([.logLevel: "verbose"], "log.level"),
        ([.logFormat: "xml"], "log.format"),
        ([.postgresPoolSize: "0"], "postgres.poolSize"),
        ([.postgresURL: "mysql://u:hunter2@h/d", .redisURL: "redis://h"], "postgres.url"),
        ([.postgresURL: "postgres://u:hunter2@h", .redisURL: "redis://h"], "postgres.url"),
        ([.postgresURL: "postgres://u:hunter2@h/d?sslmode=maybe", .redisURL: "redis://h"], "postgres.url"),
        ([.postgresURL: "postgres://u@h/d", .redisURL: "rediss://:hunter2@h"], "redis.url"),
        ([.postgresURL: "postgres://u@h/d", .redisURL: "redis://h/99"], "redis.url"),
        ([.redisPrefix: "has space"], "redis.prefix"),
    ] as [([CircleConfigKey: String], String)])
    func invalid(_ values: [CircleConfigKey: String], key: String) {
        let failure = error(values)
        #expect(failure?.key == key)
        #expect(failure.map { !$0.description.contains("hunter2") } ?? false)
        #expect(failure.map { $0.description.hasPrefix("configuration error: \(key): ") } ?? false)
    }

    @Test("keys map to environment variables and options as documented")
    func naming() {
        #expect(CircleConfigKey.httpBodyLimit.environmentName == "HTTP_BODY_LIMIT")
        #expect(CircleConfigKey.httpBodyLimit.optionName == "http-body-limit")
        #expect(CircleConfigKey.postgresPoolSize.environmentName == "POSTGRES_POOL_SIZE")
        #expect(CircleConfigKey.redisURL.environmentName == "REDIS_URL")
    }

    @Test("limits.rates changes named limits; unknown names and malformed buckets are refused by name")
    func rateLimits() throws {
        let settings = try SettingsLoader.load(from: ConfigSources.reader(values: [.limitsRates: "register=10/1h, message-send=600/1m"]), role: .embedded)
        #expect(settings.rateLimits[.register] == RateLimit(capacity: 10, period: .seconds(3600)))
        #expect(settings.rateLimits[.messageSend] == RateLimit(capacity: 600, period: .seconds(60)))
        #expect(settings.rateLimits[.directoryName] == RateLimitName.directoryName.defaultLimit)
        for bad in ["registr=10/1h", "register=10", "register=0/1h", "register=10/2d", "register=ten/1h", "register"] {
            #expect(throws: ConfigError.self, "\(bad)") {
                try SettingsLoader.load(from: ConfigSources.reader(values: [.limitsRates: bad]), role: .embedded)
            }
        }
    }

    @Test("metrics.token is a secret of at least 32 characters")
    func metricsToken() throws {
        let token = String(repeating: "t", count: 32)
        #expect(try SettingsLoader.load(from: ConfigSources.reader(values: [.metricsToken: token]), role: .embedded).metricsToken == token)
        #expect(try SettingsLoader.load(from: ConfigSources.reader(values: [:]), role: .embedded).metricsToken == nil)
        #expect(CircleConfigKey.metricsToken.isSecret)
        for bad in ["short", String(repeating: "t", count: 31), String(repeating: "t", count: 20) + " " + String(repeating: "t", count: 20)] {
            #expect(throws: ConfigError.self) { try SettingsLoader.load(from: ConfigSources.reader(values: [.metricsToken: bad]), role: .embedded) }
        }
    }

    /// "minute", "10 minutes", "hour", as docs/API.md says a period.
    static func describe(_ period: Duration) -> String {
        let seconds = period.components.seconds
        for (unit, length) in [("day", Int64(86_400)), ("hour", 3600), ("minute", 60), ("second", 1)] where seconds % length == 0 {
            let count = seconds / length
            return count == 1 ? unit : "\(count) \(unit)s"
        }
        return "\(seconds) seconds"
    }

    @Test("docs/API.md lists every named rate limit with its default")
    func apiDocumentsRateLimits() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let api = try String(contentsOf: root.appendingPathComponent("docs/API.md"), encoding: .utf8)
        for name in RateLimitName.allCases {
            let limit = name.defaultLimit
            let row = "| `\(name.rawValue)` | \(name.scope) | \(limit.capacity) per \(Self.describe(limit.period)) |"
            #expect(api.contains(row), "docs/API.md lacks the row starting \(row)")
        }
    }

    @Test("the README documents every configuration key")
    func readmeDocumentsKeys() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for key in CircleConfigKey.allCases {
            #expect(readme.contains("`\(key.rawValue)`"), "README lacks \(key.rawValue)")
            #expect(readme.contains("`\(key.environmentName)`"), "README lacks \(key.environmentName)")
            #expect(readme.contains("`--\(key.optionName)`"), "README lacks --\(key.optionName)")
        }
    }
}
