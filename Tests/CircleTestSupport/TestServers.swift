import CircleConfig
import CircleStore
import Foundation
import Logging
import PostgresNIO
import SQLKit

/// The PostgreSQL and Redis that `make test` starts, and what a suite may do with them.
///
/// `make test` exports `CIRCLE_TEST_POSTGRES_URL` (a superuser URL of a throwaway server) and
/// `CIRCLE_TEST_REDIS_URL`. Without them a bare `swift test` skips the suites that need them,
/// with the reason shown; under CI (`CI=true`) those suites run anyway and fail, so a missing
/// server can never pass silently.
public enum TestServers {
    static let environment = ProcessInfo.processInfo.environment

    public static var isCI: Bool { environment["CI"] == "true" }

    /// `limits.rates` for servers under test: the suites register hundreds of members and sign
    /// in over and over from one address, so those two limits are lifted; every other named
    /// limit keeps its default, and tests of a limit set their own.
    public static let lenientRateLimits = "register=1000000/1h,prelogin=1000000/1m"

    public static var postgresURL: String? { environment["CIRCLE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 } }
    public static var redisURL: String? { environment["CIRCLE_TEST_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// Whether suites needing PostgreSQL run (always under CI).
    public static var postgresEnabled: Bool { postgresURL != nil || isCI }
    /// Whether suites needing Redis run (always under CI).
    public static var redisEnabled: Bool { redisURL != nil || isCI }
    /// Whether suites needing both run.
    public static var bothEnabled: Bool { postgresEnabled && redisEnabled }

    /// An S3-compatible server for the vault's S3 store (moto's server mode, started by `make test`).
    public static var s3URL: String? { environment["CIRCLE_TEST_S3_URL"].flatMap { $0.isEmpty ? nil : $0 } }
    /// The access key `make test` made on it (moto checks every signature after making it).
    public static var s3AccessKey: String { environment["CIRCLE_TEST_S3_ACCESS_KEY"] ?? "test" }
    public static var s3SecretKey: String { environment["CIRCLE_TEST_S3_SECRET_KEY"] ?? "test" }
    /// Whether suites needing S3 run (always under CI).
    public static var s3Enabled: Bool { s3URL != nil || isCI }
    public static let s3SkipReason: Comment = "needs an S3-compatible server: run `make test`, or set CIRCLE_TEST_S3_URL"

    public static let postgresSkipReason: Comment = "needs PostgreSQL: run `make test`, or set CIRCLE_TEST_POSTGRES_URL"
    public static let redisSkipReason: Comment = "needs Redis: run `make test`, or set CIRCLE_TEST_REDIS_URL"
    public static let bothSkipReason: Comment = "needs PostgreSQL and Redis: run `make test`, or set CIRCLE_TEST_POSTGRES_URL and CIRCLE_TEST_REDIS_URL"

    /// A new, empty database on the test server, named after the suite; returns its settings.
    public static func freshPostgresDatabase(suite: String) async throws -> PostgresSettings {
        guard let url = postgresURL else { throw TestSupportError("CIRCLE_TEST_POSTGRES_URL is not set (run `make test`)") }
        let admin = try PostgresSettings.parse(url, poolSize: 4)
        let name = "t_" + suite.lowercased().filter { $0.isLetter || $0.isNumber } .prefix(30) + "_" + randomSuffix()
        try await PostgresStore.withSingleConnection(admin, logger: quietLogger) { store in
            try await store.read { db in try await db.raw("CREATE DATABASE \(unsafeRaw: name)").run() }
        }
        return admin.with(database: name)
    }

    /// Redis settings with a key prefix of the suite's own.
    public static func redisSettings(suite: String) throws -> RedisSettings {
        guard let url = redisURL else { throw TestSupportError("CIRCLE_TEST_REDIS_URL is not set (run `make test`)") }
        return try RedisSettings.parse(url, prefix: "test:\(suite):\(randomSuffix()):")
    }

    public static func randomSuffix() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    public static var quietLogger: Logger {
        var logger = Logger(label: "circle.test")
        logger.logLevel = .warning
        return logger
    }
}

import Testing

/// A failure in the test harness itself.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
