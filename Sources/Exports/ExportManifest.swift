import Anonymization
import Codecs
import DatabaseJobs
import Foundation

/// What makes an export an export: written last, under the lease. It names the policy by
/// digest and the key by fingerprint, never the key itself.
public struct ExportManifest: Codable, Sendable, Equatable {
    public static let currentFormat = "dbq.export.v1"
    public var format: String
    public var id: String
    public var database: String
    public var startedAt: Date
    public var finishedAt: Date
    public var job: JobStamp
    public var serverVersion: String
    public var codec: Codec
    /// How rows are written (nil in older manifests: copy).
    public var rowFormat: RowFormat?
    /// The exported snapshot every table was read in.
    public var snapshot: String?
    /// True when rows referenced by exported rows were exported too.
    public var followReferences: Bool?
    /// SHA-256 of the policy text, and the key's fingerprint; nil without a policy.
    public var policyDigest: String?
    public var keyFingerprint: String?
    public var tables: [Table]
    /// Every column exported as it is in the database (rule `keep`) and why
    /// (`public.t.c: keep (tables.public.t.c)`, `… (not in the policy (strict: false))`):
    /// what a reader of a "masked" export must know left unmasked. Nil in older manifests.
    public var rawColumns: [String]?
    /// `schema.sql`: the exported tables' DDL (pg_dump --schema-only in the same snapshot).
    public var schema: ManifestObject
    /// The fingerprint of the key its objects are encrypted with (nil: stored in clear).
    public var encryption: String?

    /// The raw columns of `tables` (see `rawColumns`).
    public static func rawColumns(_ tables: [Table]) -> [String] {
        tables.flatMap { table in
            table.columns.compactMap { c in Column.keeps(c.rule).map { "\(table.qualifiedName).\(c.name): \($0) (\(c.source))" } }
        }
    }

    public struct Table: Codable, Sendable, Equatable {
        public var schema: String
        public var name: String
        public var rows: Int64
        public var condition: String?
        public var columns: [Column]
        /// The table's rows as COPY text, compressed, in order (one stream cut into objects).
        public var objects: [ManifestObject]
        /// The k-anonymity check of the table, when the policy requires one.
        public var kAnonymity: KAnonymityGroups.Outcome?
        public var qualifiedName: String { "\(schema).\(name)" }
    }

    public struct Column: Codable, Sendable, Equatable {
        public var name: String
        public var type: String
        /// The rule's identity (`keep`, `hash:digits`, `email:52:false`) and why it applies.
        public var rule: String

        /// What a rule identity keeps as it is: the whole column (`keep`), some values of a
        /// json document (`other=keep`, or `keep` at a path), every element (`elements(keep)`);
        /// nil when it keeps nothing.
        public static func keeps(_ rule: String) -> String? {
            if rule == "keep" || rule == "elements(keep)" { return "kept as it is" }
            if rule.hasPrefix("json("), rule.contains("other=keep)") { return "partly kept as it is (json values no path names)" }
            if rule.hasPrefix("json("), rule.contains("=keep;") || rule.contains("=keep)") { return "partly kept as it is (json paths with keep)" }
            return nil
        }
        public var source: String
        public init(name: String, type: String, rule: String, source: String) {
            self.name = name
            self.type = type
            self.rule = rule
            self.source = source
        }
    }
}

/// `exports/<database>/<UTC time>-<job id>/`.
public enum ExportLayout {
    public static let root = ArtefactLayout.exportsRoot
    public static func folder(database: String, id: String) -> String { "\(root)/\(database)/\(id)" }
    public static func objectName(_ table: String, format: RowFormat = .copy, codec: Codec) -> String {
        codec == .none ? "\(table).\(format.fileExtension)" : "\(table).\(format.fileExtension).\(codec.fileExtension)"
    }
}
