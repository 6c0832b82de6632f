// swift-tools-version: 6.2
import PackageDescription

let services = ["Gateway", "Messaging", "Vault", "Presence", "Signaling", "Cleanup"]
/// What a service library needs beyond the shared set.
let serviceExtras: [String: [Target.Dependency]] = [
    "Messaging": ["CircleKit", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "PostgresKit", package: "postgres-kit")],
    "Vault": ["CircleKit", "Messaging", .product(name: "_NIOFileSystem", package: "swift-nio")],
    "Cleanup": ["Messaging", "Vault"],
]

let hb = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let configuration = Target.Dependency.product(name: "Configuration", package: "swift-configuration")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let asyncAlgorithms = Target.Dependency.product(name: "AsyncAlgorithms", package: "swift-async-algorithms")
let webSocket = Target.Dependency.product(name: "HummingbirdWebSocket", package: "hummingbird-websocket")

var targets: [Target] = [
    // Shared building blocks.
    .systemLibrary(
        name: "CHiredis",
        path: "Shared/CHiredis",
        pkgConfig: "hiredis",
        providers: [.apt(["libhiredis-dev"])]
    ),
    .target(name: "CircleCore", dependencies: [logging], path: "Shared/CircleCore"),
    .target(
        name: "CircleConfig",
        dependencies: ["CircleCore", configuration, logging, argumentParser],
        path: "Shared/CircleConfig"
    ),
    .target(
        name: "CircleStore",
        dependencies: [
            "CircleCore", "CircleConfig", logging, lifecycle,
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "SQLiteNIO", package: "sqlite-nio"),
            .product(name: "SQLKit", package: "sql-kit"),
            .product(name: "PostgresKit", package: "postgres-kit"),
            .product(name: "SQLiteKit", package: "sqlite-kit"),
        ],
        path: "Shared/CircleStore"
    ),
    .target(
        name: "CircleBus",
        dependencies: [
            "CircleCore", "CircleConfig", "CHiredis", logging, lifecycle,
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ],
        path: "Shared/CircleBus"
    ),
    .target(name: "CircleCrypto", dependencies: ["CircleCore", crypto], path: "Shared/CircleCrypto"),
    // The client library: the end-to-end protocol and the API client.
    .target(
        name: "CircleKit",
        dependencies: ["CircleCore", "CircleCrypto", crypto, .product(name: "CryptoExtras", package: "swift-crypto"),
                       .product(name: "AsyncHTTPClient", package: "async-http-client"),
                       .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "NIOHTTP1", package: "swift-nio"),
                       .product(name: "NIOFoundationCompat", package: "swift-nio"),
                       .product(name: "NIOWebSocket", package: "swift-nio"),
                       logging],
        path: "Shared/CircleKit"
    ),
    .target(
        name: "CircleEvents",
        dependencies: ["CircleCore", "CircleStore", "CircleBus", logging, lifecycle, asyncAlgorithms,
                       .product(name: "NIOCore", package: "swift-nio")],
        path: "Shared/CircleEvents"
    ),
    .target(
        name: "CircleHTTP",
        dependencies: [
            "CircleCore", "CircleConfig", "CircleStore", "CircleBus", "CircleEvents", hb, webSocket, crypto, logging, lifecycle, configuration,
            .product(name: "SQLKit", package: "sql-kit"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ],
        path: "Shared/CircleHTTP"
    ),
    // All six services composed into one process, and the `circle` command line around it.
    .target(
        name: "AllInOne",
        dependencies: ["CircleCore", "CircleConfig", "CircleStore", "CircleHTTP", hb, logging, configuration]
            + services.map { .target(name: $0) },
        path: "Services/AllInOne"
    ),
    .executableTarget(
        name: "circle",
        dependencies: ["AllInOne", "Gateway", "CircleKit", "CircleCore", "CircleConfig", "CircleStore", "CircleHTTP", argumentParser, logging, configuration],
        path: "Services/Executables/circle"
    ),
    // The load generator for the benchmarks in BENCHMARKS.md.
    .executableTarget(
        name: "circle-bench",
        dependencies: ["CircleCore", "CircleCrypto", "CircleKit", "CircleBus", "CircleConfig", argumentParser, crypto, logging,
                       .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                       .product(name: "AsyncHTTPClient", package: "async-http-client"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "NIOPosix", package: "swift-nio")],
        path: "Services/Executables/circle-bench"
    ),
    // Shared test helpers: throwaway PostgreSQL/Redis access, private server copies, processes.
    .target(
        name: "CircleTestSupport",
        dependencies: ["CircleCore", "CircleConfig", "CircleStore", "CircleBus", "CircleCrypto", logging, crypto,
                       .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                       .product(name: "NIOWebSocket", package: "swift-nio"),
                       .product(name: "NIOPosix", package: "swift-nio"),
                       .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                       .product(name: "PostgresNIO", package: "postgres-nio"),
                       .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "AsyncHTTPClient", package: "async-http-client")],
        path: "Tests/CircleTestSupport"
    ),
    .testTarget(name: "CircleCryptoTests", dependencies: ["CircleCrypto", "CircleCore", crypto], path: "Tests/CircleCryptoTests"),
    .testTarget(name: "CircleKitTests", dependencies: ["CircleKit", "CircleCrypto", "CircleCore", crypto], path: "Tests/CircleKitTests"),
    .testTarget(name: "CircleConfigTests", dependencies: ["CircleConfig", configuration], path: "Tests/CircleConfigTests"),
    .testTarget(
        name: "CircleStoreTests",
        dependencies: ["CircleStore", "CircleCore", "CircleTestSupport", logging, .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/CircleStoreTests"
    ),
    .testTarget(
        name: "CircleBusTests",
        dependencies: ["CircleBus", "CircleConfig", "CircleTestSupport", .product(name: "NIOCore", package: "swift-nio")],
        path: "Tests/CircleBusTests"
    ),
    .testTarget(
        name: "CircleHTTPTests",
        dependencies: ["CircleHTTP", "AllInOne", "CircleTestSupport", configuration,
                       .product(name: "HummingbirdTesting", package: "hummingbird")],
        path: "Tests/CircleHTTPTests"
    ),
    .testTarget(
        name: "GatewayTests",
        dependencies: ["Gateway", "AllInOne", "CircleHTTP", "CircleStore", "CircleConfig", "CircleCore", "CircleTestSupport", configuration,
                       .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                       .product(name: "NIOEmbedded", package: "swift-nio"),
                       .product(name: "NIOPosix", package: "swift-nio"),
                       .product(name: "HummingbirdTesting", package: "hummingbird")],
        path: "Tests/GatewayTests"
    ),
    .testTarget(
        name: "MessagingTests",
        dependencies: ["Messaging", "Vault", "Cleanup", "AllInOne", "CircleKit", "CircleHTTP", "CircleStore", "CircleConfig", "CircleCore", "CircleCrypto",
                       "CircleEvents", "CircleBus", "CircleTestSupport", configuration, crypto,
                       .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "HummingbirdTesting", package: "hummingbird")],
        path: "Tests/MessagingTests"
    ),
    .testTarget(
        name: "ClusterTests",
        dependencies: ["CircleTestSupport", "CircleKit", "CircleStore", "CircleConfig", "CircleBus", .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "AsyncHTTPClient", package: "async-http-client")],
        path: "Tests/ClusterTests"
    ),
]

for service in services {
    targets.append(.target(
        name: service,
        dependencies: [
            "CircleCore", "CircleConfig", "CircleStore", "CircleBus", "CircleEvents", "CircleHTTP", "CircleCrypto",
            hb, webSocket, crypto, asyncAlgorithms, logging, lifecycle, configuration,
            .product(name: "SQLKit", package: "sql-kit"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
        ] + serviceExtras[service, default: []],
        path: "Services/\(service)"
    ))
    targets.append(.executableTarget(
        name: "circle-\(service.lowercased())",
        dependencies: [.target(name: service), "CircleHTTP", "CircleConfig", argumentParser],
        path: "Services/Executables/circle-\(service.lowercased())"
    ))
}

let package = Package(
    name: "Circle",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "circle", targets: ["circle"]), .executable(name: "circle-bench", targets: ["circle-bench"])]
        + services.map { .executable(name: "circle-\($0.lowercased())", targets: ["circle-\($0.lowercased())"]) },
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/vapor/sql-kit", from: "3.36.0"),
        .package(url: "https://github.com/vapor/postgres-kit", from: "2.17.0"),
        .package(url: "https://github.com/vapor/sqlite-kit", from: "4.5.2"),
    ],
    targets: targets
)
