import Foundation
import Logging
import PostgresClient

/// Scratch databases on the test server: each test makes its own, named with a prefix and
/// random letters, and drops it at the end.
public enum ScratchDatabase {
    static let logger = Logger(label: "dbq.test.scratch")
    public static var server: PostgresConnectionString { try! PostgresConnectionString(TestServices.databaseURL) }

    /// A new empty database `<prefix>_<10 random>`; `setup` (SQL) runs in it if given.
    public static func create(_ prefix: String, setup: String? = nil) async throws -> String {
        let name = prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        if let setup {
            let db = try await connect(name)
            _ = try await db.execute(setup)
            await db.close()
        }
        return name
    }

    public static func connect(_ name: String) async throws -> PostgresConnection {
        try await PostgresConnection.connect(server.replacingDatabase(name), logger: logger)
    }

    public static func drop(_ name: String) async {
        if let admin = try? await PostgresConnection.connect(server.raw, logger: logger) {
            _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            await admin.close()
        }
    }
}
