// swift-tools-version: 6.2
import PackageDescription

let services = ["Gateway", "Messaging", "Vault", "Presence", "Signaling", "Cleanup"]
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
    // A small S3 client (SigV4 over AsyncHTTPClient) for the vault's blobs in S3-compatible storage.
    .target(
        name: "CircleObjectStore",
        dependencies: [crypto, .product(name: "AsyncHTTPClient", package: "async-http-client"),
                       .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
        path: "Shared/CircleObjectStore"
    ),
    // The end-to-end protocol's constructions that the server checks too (headers, ops, chains, padding, vault sizes).
    .target(name: "CircleProtocol", dependencies: ["CircleCore", "CircleCrypto", crypto], path: "Shared/CircleProtocol"),
    // The client library: the rest of the end-to-end protocol and the API client.
    .target(
        name: "CircleKit",
        dependencies: ["CircleCore", "CircleCrypto", "CircleProtocol", crypto, .product(name: "CryptoExtras", package: "swift-crypto"),
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
    // The security activity log: hash chains per member, sealed addresses, alerts.
    .target(
        name: "CircleActivity",
        dependencies: ["CircleCore", "CircleConfig", "CircleStore", "CircleEvents", "CircleProtocol", crypto, logging,
                       .product(name: "SQLKit", package: "sql-kit"), .product(name: "Metrics", package: "swift-metrics")],
        path: "Shared/CircleActivity"
    ),
    // The API contract (docs/openapi.yaml) built into the binaries as JSON.
    .executableTarget(
        name: "circle-embed",
        dependencies: [.product(name: "Yams", package: "Yams")],
        path: "Shared/Build/Embed"
    ),
    .plugin(name: "EmbedOpenAPI", capability: .buildTool(), dependencies: ["circle-embed"], path: "Shared/Build/EmbedOpenAPI"),
    .target(name: "CircleAPIDocument", path: "Shared/CircleAPIDocument", plugins: ["EmbedOpenAPI"]),
    // The browser client (Web/) built into the gateway.
    .plugin(name: "EmbedWebClient", capability: .buildTool(), dependencies: ["circle-embed"], path: "Shared/Build/EmbedWebClient"),
    .target(name: "CircleWebClient", dependencies: [crypto], path: "Shared/CircleWebClient", plugins: ["EmbedWebClient"]),
    .target(
        name: "CircleHTTP",
        dependencies: [
            "CircleAPIDocument", "CircleCore", "CircleConfig", "CircleStore", "CircleBus", "CircleEvents", hb, webSocket, crypto, logging, lifecycle, configuration,
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
        dependencies: ["CircleCore", "CircleConfig", "CircleStore", "CircleHTTP", hb, logging, configuration, lifecycle]
            + services.map { .target(name: "\($0)HTTP") },
        path: "Services/AllInOne"
    ),
    .executableTarget(
        name: "circle",
        dependencies: ["AllInOne", "GatewayHTTP", "GatewayStore", "CleanupStore", "VaultStore", "CircleKit", "CircleProtocol", "CircleActivity", .product(name: "SQLKit", package: "sql-kit"), "CircleCore", "CircleConfig", "CircleStore", "CircleHTTP", argumentParser, logging, configuration],
        path: "Services/Executables/circle"
    ),
    // The load generator for the benchmarks in BENCHMARKS.md.
    .executableTarget(
        name: "circle-bench",
        dependencies: ["CircleCore", "CircleCrypto", "CircleKit", "CircleProtocol", "CircleBus", "CircleConfig", "CircleEvents", "CircleStore", argumentParser, crypto, logging,
                       .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                       .product(name: "AsyncHTTPClient", package: "async-http-client"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "NIOHTTP1", package: "swift-nio"),
                       .product(name: "NIOPosix", package: "swift-nio"),
                       .product(name: "NIOWebSocket", package: "swift-nio")],
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
    // The real server (every service in one process) on a free port, for tests that drive it through HTTP.
    .target(
        name: "CircleServerTestSupport",
        dependencies: ["AllInOne", "CircleConfig", "CircleCore", "CircleKit", "CircleStore", "CircleTestSupport", configuration, crypto, lifecycle,
                       .product(name: "HummingbirdTesting", package: "hummingbird")],
        path: "Tests/CircleServerTestSupport"
    ),
    .testTarget(name: "CircleCryptoTests", dependencies: ["CircleCrypto", "CircleCore", crypto], path: "Tests/CircleCryptoTests"),
    .testTarget(name: "CircleProtocolTests", dependencies: ["CircleProtocol", "CircleKit", "CircleCrypto", "CircleCore", crypto], path: "Tests/CircleProtocolTests"),
    .testTarget(
        name: "CircleKitTests",
        dependencies: ["CircleKit", "CircleProtocol", "CircleCrypto", "CircleCore", "CircleStore", "GatewayStore", "CircleTestSupport", "CircleServerTestSupport", crypto,
                       .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/CircleKitTests"
    ),
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
        name: "CircleEventsTests",
        dependencies: ["CircleEvents", "CircleBus", "CircleConfig", "CircleCore", "CircleStore", "CircleTestSupport", .product(name: "NIOCore", package: "swift-nio")],
        path: "Tests/CircleEventsTests"
    ),
    .testTarget(
        name: "CircleActivityTests",
        dependencies: ["CircleActivity", "CircleConfig", "CircleCore", "CircleStore", "CircleTestSupport", .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/CircleActivityTests"
    ),
    .testTarget(
        name: "CircleHTTPTests",
        dependencies: ["CircleHTTP", "AllInOne", "CircleTestSupport", configuration,
                       .product(name: "HummingbirdTesting", package: "hummingbird")],
        path: "Tests/CircleHTTPTests"
    ),
    .testTarget(
        name: "GatewayHTTPTests",
        dependencies: ["GatewayHTTP", "GatewayStore", "AllInOne", "CircleServerTestSupport", "CircleBus", "CircleHTTP", "CircleStore", "CircleConfig", "CircleCore", "CircleTestSupport", configuration,
                       .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                       .product(name: "NIOEmbedded", package: "swift-nio"),
                       .product(name: "NIOPosix", package: "swift-nio"),
                       .product(name: "NIOWebSocket", package: "swift-nio"),
                       .product(name: "HummingbirdTesting", package: "hummingbird")],
        path: "Tests/GatewayHTTPTests"
    ),
    .testTarget(
        name: "MessagingCoreTests",
        dependencies: ["MessagingCore", "MessagingStore", "CircleKit", "CircleProtocol", "CircleStore", "CircleConfig", "CircleCore", "CircleEvents", "CircleBus",
                       "CircleTestSupport", "CircleServerTestSupport", .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/MessagingCoreTests"
    ),
    .testTarget(
        name: "MessagingHTTPTests",
        dependencies: ["MessagingHTTP", "CleanupCore", "CircleKit", "CircleProtocol", "CircleStore", "CircleConfig", "CircleCore", "CircleCrypto",
                       "CircleTestSupport", "CircleServerTestSupport", crypto, .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/MessagingHTTPTests"
    ),
    .testTarget(
        name: "GatewayCoreTests",
        dependencies: ["GatewayCore", "PresenceStore", "CircleBus", "CircleCore", "CircleEvents", "CircleTestSupport", "CircleServerTestSupport"],
        path: "Tests/GatewayCoreTests"
    ),
    .testTarget(
        name: "PresenceHTTPTests",
        dependencies: ["PresenceHTTP", "PresenceCore", "PresenceStore", "GatewayCore", "CircleBus", "CircleEvents", "CircleStore", "CircleCore", "CircleProtocol",
                       "CircleTestSupport", "CircleServerTestSupport", .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/PresenceHTTPTests"
    ),
    .testTarget(
        name: "SignalingHTTPTests",
        dependencies: ["SignalingHTTP", "SignalingCore", "SignalingStore", "CircleKit", "CircleProtocol", "CircleBus", "CircleEvents", "CircleStore", "CircleConfig", "CircleCore",
                       "CircleTestSupport", "CircleServerTestSupport", crypto, configuration, .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/SignalingHTTPTests"
    ),
    .testTarget(
        name: "VaultHTTPTests",
        dependencies: ["VaultHTTP", "VaultCore", "VaultStore", "CleanupCore", "CircleObjectStore", "CircleKit", "CircleProtocol", "CircleStore", "CircleConfig", "CircleCore",
                       "CircleTestSupport", "CircleServerTestSupport", crypto, .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/VaultHTTPTests"
    ),
    .testTarget(
        name: "CleanupHTTPTests",
        dependencies: ["CleanupHTTP", "CleanupCore", "CleanupStore", "VaultStore", "CircleHTTP", "CircleBus", "CircleKit", "CircleProtocol", "CircleActivity", "CircleEvents", "CircleStore",
                       "CircleConfig", "CircleCore", "CircleTestSupport", "CircleServerTestSupport", crypto, lifecycle, logging,
                       .product(name: "SQLKit", package: "sql-kit")],
        path: "Tests/CleanupHTTPTests"
    ),
    .testTarget(
        name: "ClusterTests",
        dependencies: ["CircleTestSupport", "CircleServerTestSupport", "CircleKit", "CircleStore", "CircleConfig", "CircleBus", "CircleEvents", "CircleCore", .product(name: "SQLKit", package: "sql-kit"),
                       .product(name: "NIOCore", package: "swift-nio"),
                       .product(name: "AsyncHTTPClient", package: "async-http-client")],
        path: "Tests/ClusterTests"
    ),
]

/// Each service is three modules, imported only downward: `<Service>Store` (repositories, their
/// SQL, read-only views for other services), `<Service>Core` (actors and services that validate,
/// authorize, store and publish), `<Service>HTTP` (thin controllers and the build function).
let storeBase: [Target.Dependency] = [
    "CircleCore", "CircleConfig", "CircleStore", "CircleProtocol", "CircleCrypto", crypto, logging,
    .product(name: "SQLKit", package: "sql-kit"), .product(name: "NIOCore", package: "swift-nio"),
]
let coreBase: [Target.Dependency] = storeBase + [
    "CircleBus", "CircleEvents", "CircleHTTP", "CircleActivity", lifecycle, asyncAlgorithms, configuration,
    .product(name: "Metrics", package: "swift-metrics"),
]
let httpBase: [Target.Dependency] = coreBase + [hb, webSocket, .product(name: "NIOWebSocket", package: "swift-nio")]
/// A service's layers (a new service starts with its build function only), what each needs beyond
/// the shared sets, and which other services' stores its core reads.
struct ServiceLayers {
    var hasStore = true
    var hasCore = true
    var store: [Target.Dependency] = []
    var core: [Target.Dependency] = []
    var http: [Target.Dependency] = []
}
let serviceLayers: [String: ServiceLayers] = [
    "Gateway": ServiceLayers(core: ["MessagingStore", "PresenceStore"], http: ["CircleWebClient"]),
    "Messaging": ServiceLayers(store: [.product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "PostgresKit", package: "postgres-kit")], core: ["GatewayStore"]),
    "Vault": ServiceLayers(store: ["CircleObjectStore", .product(name: "_NIOFileSystem", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"), hb,
                                   .product(name: "AsyncHTTPClient", package: "async-http-client")],
                           core: ["MessagingStore"]),
    "Presence": ServiceLayers(core: ["MessagingStore"]),
    "Signaling": ServiceLayers(core: ["MessagingStore"]),
    "Cleanup": ServiceLayers(core: ["GatewayStore", "MessagingStore", "VaultStore", "PresenceStore", "SignalingStore"]),
]

for service in services {
    let layers = serviceLayers[service]!
    var below: [Target.Dependency] = []
    if layers.hasStore {
        targets.append(.target(name: "\(service)Store", dependencies: storeBase + layers.store, path: "Services/\(service)/Store"))
        below.append(.target(name: "\(service)Store"))
    }
    if layers.hasCore {
        targets.append(.target(name: "\(service)Core", dependencies: coreBase + below + layers.core, path: "Services/\(service)/Core"))
        below.append(.target(name: "\(service)Core"))
    }
    targets.append(.target(name: "\(service)HTTP", dependencies: httpBase + below + layers.core + layers.http, path: "Services/\(service)/HTTP"))
    targets.append(.executableTarget(
        name: "circle-\(service.lowercased())",
        dependencies: [.target(name: "\(service)HTTP"), "CircleHTTP", "CircleConfig", argumentParser],
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
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: targets
)
