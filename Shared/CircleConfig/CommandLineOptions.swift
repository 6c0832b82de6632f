import ArgumentParser

/// The options every server process takes; each maps to one configuration key.
public struct ServerOptions: ParsableArguments {
    @Option(name: .customLong("http-host"), help: ArgumentHelp(CircleConfigKey.httpHost.help, valueName: "address"))
    var httpHost: String?

    @Option(name: .customLong("http-port"), help: ArgumentHelp(CircleConfigKey.httpPort.help, valueName: "port"))
    var httpPort: String?

    @Option(name: .customLong("http-body-limit"), help: ArgumentHelp(CircleConfigKey.httpBodyLimit.help, valueName: "bytes"))
    var httpBodyLimit: String?

    @Option(name: .customLong("postgres-url"), help: ArgumentHelp(CircleConfigKey.postgresURL.help, valueName: "url"))
    var postgresURL: String?

    @Option(name: .customLong("postgres-pool-size"), help: ArgumentHelp(CircleConfigKey.postgresPoolSize.help, valueName: "n"))
    var postgresPoolSize: String?

    @Option(name: .customLong("redis-url"), help: ArgumentHelp(CircleConfigKey.redisURL.help, valueName: "url"))
    var redisURL: String?

    @Option(name: .customLong("redis-prefix"), help: ArgumentHelp(CircleConfigKey.redisPrefix.help, valueName: "prefix"))
    var redisPrefix: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp(CircleConfigKey.logLevel.help, valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: ArgumentHelp(CircleConfigKey.logFormat.help, valueName: "format"))
    var logFormat: String?

    @Option(name: .customLong("sessions-idle-timeout"), help: ArgumentHelp(CircleConfigKey.sessionsIdleTimeout.help, valueName: "duration"))
    var sessionsIdleTimeout: String?

    @Option(name: .customLong("sessions-max-age"), help: ArgumentHelp(CircleConfigKey.sessionsMaxAge.help, valueName: "duration"))
    var sessionsMaxAge: String?

    @Option(name: .customLong("limits-rates"), help: ArgumentHelp(CircleConfigKey.limitsRates.help, valueName: "limits"))
    var limitsRates: String?

    @Option(name: .customLong("metrics-token"), help: ArgumentHelp(CircleConfigKey.metricsToken.help + " Prefer the environment: command lines are visible to other users.", valueName: "token"))
    var metricsToken: String?

    public init() {}

    /// The values given on the command line, by key.
    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.httpHost] = httpHost
        out[.httpPort] = httpPort
        out[.httpBodyLimit] = httpBodyLimit
        out[.postgresURL] = postgresURL
        out[.postgresPoolSize] = postgresPoolSize
        out[.redisURL] = redisURL
        out[.redisPrefix] = redisPrefix
        out[.logLevel] = logLevel
        out[.logFormat] = logFormat
        out[.sessionsIdleTimeout] = sessionsIdleTimeout
        out[.sessionsMaxAge] = sessionsMaxAge
        out[.limitsRates] = limitsRates
        out[.metricsToken] = metricsToken
        return out
    }
}

/// The options of the embedded mode, on top of `ServerOptions`.
public struct EmbeddedOptions: ParsableArguments {
    @Option(name: .customLong("sqlite-path"), help: ArgumentHelp(CircleConfigKey.sqlitePath.help, valueName: "path"))
    var sqlitePath: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.sqlitePath] = sqlitePath
        return out
    }
}

/// The options that choose a database, for commands that only touch the database.
public struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("postgres-url"), help: ArgumentHelp(CircleConfigKey.postgresURL.help, valueName: "url"))
    var postgresURL: String?

    @Option(name: .customLong("sqlite-path"), help: ArgumentHelp(CircleConfigKey.sqlitePath.help, valueName: "path"))
    var sqlitePath: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp(CircleConfigKey.logLevel.help, valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: ArgumentHelp(CircleConfigKey.logFormat.help, valueName: "format"))
    var logFormat: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.postgresURL] = postgresURL
        out[.sqlitePath] = sqlitePath
        out[.logLevel] = logLevel
        out[.logFormat] = logFormat
        return out
    }
}

/// The gateway's own options (accounts, sessions, invites), on top of `ServerOptions`.
public struct GatewayOptions: ParsableArguments {
    @Option(name: .customLong("http-public-url"), help: ArgumentHelp(CircleConfigKey.httpPublicURL.help, valueName: "url"))
    var httpPublicURL: String?

    @Option(name: .customLong("http-trust-forwarded-for"), help: ArgumentHelp(CircleConfigKey.httpTrustForwardedFor.help, valueName: "bool"))
    var httpTrustForwardedFor: String?

    @Option(name: .customLong("auth-pepper"), help: ArgumentHelp(CircleConfigKey.authPepper.help + " Prefer the environment: command lines are visible to other users.", valueName: "base64"))
    var authPepper: String?

    @Option(name: .customLong("auth-pepper-file"), help: ArgumentHelp(CircleConfigKey.authPepperFile.help, valueName: "path"))
    var authPepperFile: String?

    @Option(name: .customLong("auth-registration"), help: ArgumentHelp(CircleConfigKey.authRegistration.help, valueName: "policy"))
    var authRegistration: String?

    @Option(name: .customLong("web-root"), help: ArgumentHelp(CircleConfigKey.webRoot.help, valueName: "path"))
    var webRoot: String?

    @Option(name: .customLong("socket-ping-interval"), help: ArgumentHelp(CircleConfigKey.socketPingInterval.help, valueName: "duration"))
    var socketPingInterval: String?

    @Option(name: .customLong("socket-silence-limit"), help: ArgumentHelp(CircleConfigKey.socketSilenceLimit.help, valueName: "duration"))
    var socketSilenceLimit: String?

    @Option(name: .customLong("presence-lease"), help: ArgumentHelp(CircleConfigKey.presenceLease.help, valueName: "duration"))
    var presenceLease: String?

    @Option(name: .customLong("socket-max-per-session"), help: ArgumentHelp(CircleConfigKey.socketMaxPerSession.help, valueName: "n"))
    var socketMaxPerSession: String?

    @Option(name: .customLong("socket-max-per-user"), help: ArgumentHelp(CircleConfigKey.socketMaxPerUser.help, valueName: "n"))
    var socketMaxPerUser: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.httpPublicURL] = httpPublicURL
        out[.httpTrustForwardedFor] = httpTrustForwardedFor
        out[.authPepper] = authPepper
        out[.authPepperFile] = authPepperFile
        out[.authRegistration] = authRegistration
        out[.webRoot] = webRoot
        out[.socketPingInterval] = socketPingInterval
        out[.socketSilenceLimit] = socketSilenceLimit
        out[.presenceLease] = presenceLease
        out[.socketMaxPerSession] = socketMaxPerSession
        out[.socketMaxPerUser] = socketMaxPerUser
        return out
    }
}

/// The cleanup service's own options.
public struct CleanupOptions: ParsableArguments {
    @Option(name: .customLong("events-retention"), help: ArgumentHelp(CircleConfigKey.eventsRetention.help, valueName: "duration"))
    var eventsRetention: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.eventsRetention] = eventsRetention
        return out
    }
}

/// The vault's options (read by the vault and by cleanup, which removes expired files).
public struct VaultOptions: ParsableArguments {
    @Option(name: .customLong("vault-path"), help: ArgumentHelp(CircleConfigKey.vaultPath.help, valueName: "path"))
    var vaultPath: String?

    @Option(name: .customLong("vault-max-file-size"), help: ArgumentHelp(CircleConfigKey.vaultMaxFileSize.help, valueName: "bytes"))
    var vaultMaxFileSize: String?

    @Option(name: .customLong("vault-quota"), help: ArgumentHelp(CircleConfigKey.vaultQuota.help, valueName: "bytes"))
    var vaultQuota: String?

    @Option(name: .customLong("vault-upload-expiry"), help: ArgumentHelp(CircleConfigKey.vaultUploadExpiry.help, valueName: "duration"))
    var vaultUploadExpiry: String?

    @Option(name: .customLong("vault-max-unfinished-uploads"), help: ArgumentHelp(CircleConfigKey.vaultMaxUnfinishedUploads.help, valueName: "count"))
    var vaultMaxUnfinishedUploads: String?

    @Option(name: .customLong("vault-idle-file-retention"), help: ArgumentHelp(CircleConfigKey.vaultIdleFileRetention.help, valueName: "duration"))
    var vaultIdleFileRetention: String?

    @OptionGroup var s3: VaultS3Options

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.vaultPath] = vaultPath
        out[.vaultMaxFileSize] = vaultMaxFileSize
        out[.vaultQuota] = vaultQuota
        out[.vaultUploadExpiry] = vaultUploadExpiry
        out[.vaultMaxUnfinishedUploads] = vaultMaxUnfinishedUploads
        out[.vaultIdleFileRetention] = vaultIdleFileRetention
        out.merge(s3.values) { first, _ in first }
        return out
    }
}

/// Where the vault keeps its files when they are in S3-compatible storage.
public struct VaultS3Options: ParsableArguments {
    @Option(name: .customLong("vault-s3-endpoint"), help: ArgumentHelp(CircleConfigKey.vaultS3Endpoint.help, valueName: "url"))
    var vaultS3Endpoint: String?

    @Option(name: .customLong("vault-s3-bucket"), help: ArgumentHelp(CircleConfigKey.vaultS3Bucket.help, valueName: "name"))
    var vaultS3Bucket: String?

    @Option(name: .customLong("vault-s3-region"), help: ArgumentHelp(CircleConfigKey.vaultS3Region.help, valueName: "region"))
    var vaultS3Region: String?

    @Option(name: .customLong("vault-s3-access-key"), help: ArgumentHelp(CircleConfigKey.vaultS3AccessKey.help, valueName: "id"))
    var vaultS3AccessKey: String?

    @Option(name: .customLong("vault-s3-secret-key"), help: ArgumentHelp(CircleConfigKey.vaultS3SecretKey.help, valueName: "secret"))
    var vaultS3SecretKey: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.vaultS3Endpoint] = vaultS3Endpoint
        out[.vaultS3Bucket] = vaultS3Bucket
        out[.vaultS3Region] = vaultS3Region
        out[.vaultS3AccessKey] = vaultS3AccessKey
        out[.vaultS3SecretKey] = vaultS3SecretKey
        return out
    }
}

/// The security activity log's options (every service that records or reads activity).
public struct ActivityOptions: ParsableArguments {
    @Option(name: .customLong("activity-keys"), help: ArgumentHelp(CircleConfigKey.activityKeys.help + " Prefer the environment: command lines are visible to other users.", valueName: "id:base64,..."))
    var activityKeys: String?

    @Option(name: .customLong("activity-key-file"), help: ArgumentHelp(CircleConfigKey.activityKeyFile.help, valueName: "path"))
    var activityKeyFile: String?

    @Option(name: .customLong("activity-retention"), help: ArgumentHelp(CircleConfigKey.activityRetention.help, valueName: "duration"))
    var activityRetention: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.activityKeys] = activityKeys
        out[.activityKeyFile] = activityKeyFile
        out[.activityRetention] = activityRetention
        return out
    }
}

/// The signaling service's options: ring time and TURN.
public struct CallOptions: ParsableArguments {
    @Option(name: .customLong("calls-ring-timeout"), help: ArgumentHelp(CircleConfigKey.callsRingTimeout.help, valueName: "duration"))
    var callsRingTimeout: String?

    @Option(name: .customLong("turn-secret"), help: ArgumentHelp(CircleConfigKey.turnSecret.help + " Prefer the environment: command lines are visible to other users.", valueName: "secret"))
    var turnSecret: String?

    @Option(name: .customLong("turn-urls"), help: ArgumentHelp(CircleConfigKey.turnURLs.help, valueName: "urls"))
    var turnURLs: String?

    @Option(name: .customLong("turn-ttl"), help: ArgumentHelp(CircleConfigKey.turnTTL.help, valueName: "duration"))
    var turnTTL: String?

    public init() {}

    public var values: [CircleConfigKey: String] {
        var out: [CircleConfigKey: String] = [:]
        out[.callsRingTimeout] = callsRingTimeout
        out[.turnSecret] = turnSecret
        out[.turnURLs] = turnURLs
        out[.turnTTL] = turnTTL
        return out
    }
}
