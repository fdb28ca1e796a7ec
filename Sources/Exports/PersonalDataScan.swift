import Anonymization
import DatabaseJobs
import Foundation
import PostgresClient

/// `dbq anonymize scan`: samples the chosen tables in one read-only snapshot and suggests
/// a rule for every column (the suggestions are `PersonalDataScanner`'s, pure).
public enum PersonalDataScan {
    public typealias TableSuggestions = (table: String, columns: [(name: String, suggestion: PersonalDataScanner.Suggestion)])

    /// The suggestions per table, in dependency order, and the catalog they were made for.
    public static func scan(_ connection: PostgresConnection, tables: [String]?, sample: Int) async throws
        -> (tables: [TableSuggestions], catalog: TableCatalog) {
        _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let full = try await ExportCatalogQuery.load(connection)
        let selection = try ExportSelection.resolve(full, tables: tables, conditions: nil, followReferences: false)
        var result: [TableSuggestions] = []
        for table in selection.catalog.dependencyOrder {
            let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
            let list = try table.columns.map { "\(try PostgresIdentifier.quoted($0.name))::text" }.joined(separator: ", ")
            // Large tables are sampled across their pages (TABLESAMPLE SYSTEM), not from their start.
            let estimate = try await connection.query("SELECT reltuples FROM pg_class WHERE oid = $1::regclass",
                                                      [PostgresParameter(qualified)]).scalar.flatMap(Double.init) ?? -1
            let sampling = estimate > Double(sample) * 10
                ? String(format: " TABLESAMPLE SYSTEM (%.4f)", min(100, Double(sample) * 10 / estimate * 100)) : ""
            let rows = try await connection.query("SELECT \(list) FROM ONLY \(qualified)\(sampling) LIMIT \(sample)")
            var columns: [(String, PersonalDataScanner.Suggestion)] = []
            for (i, column) in table.columns.enumerated() {
                let unique = table.uniqueKeys.contains { $0 == [column.name] }
                let inReference = full.foreignKeys.contains { fk in
                    (fk.table == table.qualifiedName && fk.columns.contains(column.name))
                        || (fk.referenced == table.qualifiedName && fk.referencedColumns.contains(column.name))
                }
                let samples = rows.compactMap { $0[i] }
                columns.append((column.name, PersonalDataScanner.suggest(table: table.qualifiedName, column: column, unique: unique,
                                                                         inReference: inReference, samples: samples)))
            }
            result.append((table.qualifiedName, columns))
        }
        _ = try? await connection.execute("ROLLBACK")
        return (result, selection.catalog)
    }
}
