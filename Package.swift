// swift-tools-version: 6.2
import PackageDescription

/// One set of settings for every target: Swift 6 mode, complete strict concurrency.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InferIsolatedConformances"),
]

let package = Package(
    name: "dbq",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dbq", targets: ["dbq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C libraries for the wire, each a [system] module with typed shims.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CDBQSystem"),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCryptoSHA", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // libpg_query ships no pkg-config file: the modulemap links it.
        .systemLibrary(name: "CPgQuery", providers: [.apt(["libpg-query-dev"])]),

        // Pieces every layer shares: blocking lanes, byte streams, backoff, redaction.
        .target(
            name: "DBQSupport",
            dependencies: ["CDBQSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Thin, safe clients that know nothing of jobs.
        .target(
            name: "RedisClient",
            dependencies: [
                "CHiredis", "DBQSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresClient",
            dependencies: ["CLibpq", "DBQSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ObjectStorage",
            dependencies: [
                "CCurl", "CDBQSystem", "DBQSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Kinds, envelope, states, retry policy, the worker service, the in-memory queue.
        .target(
            name: "Queue",
            dependencies: [
                "DBQSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The production queue on Redis: every transition one Lua script.
        .target(
            name: "RedisQueue",
            dependencies: ["Queue", "RedisClient", "DBQSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Cron schedules and the beat service.
        .target(
            name: "Beat",
            dependencies: [
                "Queue", "DBQSupport", .product(name: "Yams", package: "Yams"), .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Streaming zstd and gzip.
        .target(name: "Codecs", dependencies: ["CZstd", "CZlib"], swiftSettings: swiftSettings),
        // The core every job family stands on: the job environment and its database scope
        // (configuration, lock class, lock_timeout with retries, an awaited close), the
        // artefact commit protocol and catalog, and snapshot-before-change. Knows no family.
        .target(
            name: "DatabaseJobs",
            dependencies: [
                "Codecs", "Queue", "DBQConfig", "PostgresClient", "ObjectStorage", "DBQSupport",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Backup, restore, verify-backup and retention: manifests, catalog, pipelines, policy.
        .target(
            name: "Backups",
            dependencies: [
                "DatabaseJobs", "Codecs", "Queue", "DBQConfig", "PostgresClient", "ObjectStorage", "DBQSupport",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Eight Feistel permutations side by side in vector registers (AVX-512, AVX2 or
        // portable, chosen at run time): the one C source of dbq's own, for what Swift
        // cannot compile for a CPU feature it checks at run time.
        .target(
            name: "FeistelKernel",
            cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))]
        ),
        // Masking policies and rules: pure, deterministic, keyed; no database, no I/O.
        .target(
            name: "Anonymization",
            dependencies: ["FeistelKernel", "CCryptoSHA", .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "_CryptoExtras", package: "swift-crypto"), .product(name: "Yams", package: "Yams")],
            // Optimized in debug builds too: masking is per value, and unoptimized generic
            // code is ~50x slower, which would make the million-row tests crawl.
            swiftSettings: swiftSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // Export and import of tables, masked by an anonymization policy.
        .target(
            name: "Exports",
            dependencies: ["Anonymization", "DatabaseJobs", "PostgresParser", "Codecs", "Queue", "PostgresClient", "ObjectStorage", "DBQSupport",
                           .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // Snapshots of tables and their one-transaction rollback.
        .target(
            name: "Snapshots",
            dependencies: ["DatabaseJobs", "Codecs", "Queue", "PostgresClient", "ObjectStorage", "DBQSupport",
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // PostgreSQL's own parser (libpg_query): statements and their parse trees.
        .target(name: "PostgresParser", dependencies: ["CPgQuery", "DBQSupport"], swiftSettings: swiftSettings),
        // Migration files, their lint, the planner and the runner; migrate and migrate-revert.
        .target(
            name: "Migrations",
            dependencies: ["PostgresParser", "DatabaseJobs", "Queue", "PostgresClient", "ObjectStorage", "DBQSupport",
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Index advice (pg_stat_statements, HypoPG, the catalog's checks) and safe index builds.
        .target(
            name: "Indexes",
            dependencies: ["PostgresParser", "DatabaseJobs", "Queue", "PostgresClient", "DBQSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Maintenance (vacuum, analyze, reindex by thresholds), health checks and stats with trends.
        .target(
            name: "Operations",
            dependencies: ["DatabaseJobs", "Queue", "PostgresClient", "ObjectStorage", "DBQSupport", .product(name: "Logging", package: "swift-log"),
                           .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: swiftSettings
        ),
        // Alerts: conditions raised where they are seen, deduplicated fleet-wide in Redis,
        // told to webhooks, Slack-compatible hooks and e-mail (libcurl), resolved when they clear.
        .target(
            name: "Alerts",
            dependencies: ["DBQConfig", "DBQSupport", "Queue", "RedisQueue", "ObjectStorage", .product(name: "Logging", package: "swift-log"),
                           .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: swiftSettings
        ),
        // The web dashboard: pages rendered from Redis on every request, actions behind the
        // operator token; and the schedule status `dbq beat status` prints.
        .target(
            name: "Dashboard",
            dependencies: [
                "RedisQueue", "Queue", "Beat", "DBQSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // dbq.yaml with environment overrides.
        .target(
            name: "DBQConfig",
            dependencies: ["DBQSupport", "RedisClient", "PostgresClient", "ObjectStorage", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // What every dbq command shares: option groups (--config, --redis-url, S3), failure
        // reporting, logging, text formats, and the registry of every kind.
        .target(
            name: "DBQCommand",
            dependencies: [
                "CDBQSystem", "DBQSupport", "RedisClient", "ObjectStorage", "Queue", "RedisQueue", "DBQConfig", "DatabaseJobs",
                "Backups", "Exports", "Snapshots", "Migrations", "Indexes", "Operations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // `dbq bench`: each bench measures one part beside its reference tool and prints figures.
        .target(
            name: "DBQBench",
            dependencies: [
                "DBQCommand", "CDBQSystem", "DBQSupport", "RedisClient", "PostgresClient", "ObjectStorage", "Queue", "RedisQueue", "DBQConfig",
                "Codecs", "DatabaseJobs", "Backups", "Exports", "Anonymization", "Snapshots", "Indexes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "dbq",
            dependencies: [
                "DBQCommand", "DBQBench",
                "CDBQSystem", "DBQSupport", "RedisClient", "PostgresClient", "ObjectStorage", "Queue", "RedisQueue", "Beat", "DBQConfig",
                "Codecs", "DatabaseJobs", "Backups", "Exports", "Anonymization", "Snapshots", "Migrations", "PostgresParser", "Indexes", "Operations", "Dashboard", "Alerts",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // Where the integration tests find the servers deploy/local/start.sh runs.
        .target(name: "DBQTestSupport", dependencies: ["DBQSupport", "PostgresClient", .product(name: "Logging", package: "swift-log")],
                path: "Tests/DBQTestSupport", swiftSettings: swiftSettings),
        // What the job families' integration tests share: environments, contexts, stores.
        .target(name: "JobTestSupport", dependencies: ["DatabaseJobs", "DBQConfig", "ObjectStorage", "PostgresClient", "Queue", "DBQTestSupport",
                                                       .product(name: "Logging", package: "swift-log")],
                path: "Tests/JobTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "DBQSupportTests", dependencies: ["DBQSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RedisClientTests",
            dependencies: ["RedisClient", "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresClientTests",
            dependencies: ["PostgresClient", "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ObjectStorageTests",
            dependencies: [
                "ObjectStorage", "DBQSupport", "DBQTestSupport",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "QueueTests", dependencies: ["Queue", "DBQSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "AnonymizationTests", dependencies: ["Anonymization", "FeistelKernel", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        .testTarget(
            name: "ExportsTests",
            dependencies: ["JobTestSupport", "DatabaseJobs", "Exports", "Anonymization", "Backups", "Snapshots", "DBQConfig", "ObjectStorage", "PostgresClient", "Codecs", "Queue", "RedisQueue", "RedisClient",
                           "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SnapshotsTests",
            dependencies: ["JobTestSupport", "DatabaseJobs", "Snapshots", "Backups", "DBQConfig", "ObjectStorage", "PostgresClient", "Codecs", "Queue",
                           "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MigrationsTests",
            dependencies: ["JobTestSupport", "DatabaseJobs", "Migrations", "PostgresParser", "Snapshots", "Backups", "DBQConfig", "ObjectStorage", "PostgresClient", "Queue",
                           "RedisQueue", "RedisClient", "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IndexesTests",
            dependencies: ["JobTestSupport", "DatabaseJobs", "Indexes", "PostgresParser", "Backups", "DBQConfig", "ObjectStorage", "PostgresClient", "Queue",
                           "RedisQueue", "RedisClient", "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OperationsTests",
            dependencies: ["JobTestSupport", "DatabaseJobs", "Operations", "Backups", "DBQConfig", "ObjectStorage", "PostgresClient", "Queue", "DBQSupport", "DBQTestSupport",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ConfigurationTests", dependencies: ["DBQConfig", "ObjectStorage"], swiftSettings: swiftSettings),
        .testTarget(name: "BeatTests", dependencies: ["DatabaseJobs", "Beat", "Queue", "DBQSupport", "Backups", "Operations"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RedisQueueTests",
            dependencies: ["RedisQueue", "Queue", "Beat", "RedisClient", "DBQSupport", "DBQTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "DashboardTests", dependencies: ["Dashboard", "RedisQueue", "Queue"], swiftSettings: swiftSettings),
        .testTarget(name: "AlertsTests", dependencies: ["Alerts", "DBQConfig", "DBQSupport", "Queue", "RedisQueue", "RedisClient", "PostgresClient", "DBQTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "CodecsTests", dependencies: ["Codecs", "DBQSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BackupsTests",
            dependencies: ["JobTestSupport", "DatabaseJobs", 
                "Backups", "Codecs", "Queue", "RedisQueue", "DBQConfig", "PostgresClient", "ObjectStorage", "DBQSupport", "DBQTestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "dbqTests", dependencies: ["DBQSupport", "DBQTestSupport", "PostgresClient", "RedisQueue", "RedisClient", "Queue", "Dashboard",
                                                  "DatabaseJobs", "DBQCommand",
                                                  .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams")],
                    exclude: ["Browser", "Pinned"], swiftSettings: swiftSettings),
    ]
)
