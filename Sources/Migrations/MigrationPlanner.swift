import DatabaseJobs
import Foundation

/// One row of the tracking table (`public.dbq_migrations`).
public struct AppliedMigration: Sendable, Equatable, Codable {
    public var version: String
    public var name: String
    public var checksum: String
    public var appliedAt: String?
    public var durationMs: Int64?
    public var jobID: String?
    public var transactional: Bool
    /// `applied`, or `partial` for a non-transactional file that stopped part-way.
    public var state: String
    /// For a partial file: the statements done (the next run resumes after them).
    public var statementsDone: Int

    public init(version: String, name: String, checksum: String, appliedAt: String? = nil, durationMs: Int64? = nil, jobID: String? = nil,
                transactional: Bool = true, state: String = "applied", statementsDone: Int = 0) {
        self.version = version
        self.name = name
        self.checksum = checksum
        self.appliedAt = appliedAt
        self.durationMs = durationMs
        self.jobID = jobID
        self.transactional = transactional
        self.state = state
        self.statementsDone = statementsDone
    }

    public var number: Int { Int(version) ?? 0 }
    public var isPartial: Bool { state == "partial" }
}

/// What a run will do, decided from the files and the tracking table alone. Pure.
public enum MigrationPlanner {
    public struct Refusal: Error, Sendable, CustomStringConvertible, Equatable {
        public var description: String
    }

    public struct Step: Sendable, Equatable {
        public var file: MigrationFile
        /// Statements already done by an earlier, interrupted run (non-transactional files).
        public var resumeAt: Int
        /// An earlier run started this file (its row is partial): the statement at
        /// `resumeAt` may have run before that run stopped.
        public var resuming: Bool = false
    }

    /// The files to apply, in order, up to `target` (a version; nil: all). Refused, naming
    /// the file, when an applied file changed, an applied file is gone, or a new file is
    /// older than the newest applied one (unless `outOfOrder`).
    public static func pending(files: [MigrationFile], applied: [AppliedMigration], target: String? = nil, outOfOrder: Bool = false) throws(Refusal) -> [Step] {
        let byNumber = Dictionary(files.map { ($0.number, $0) }, uniquingKeysWith: { a, _ in a })
        let appliedNumbers = Set(applied.map(\.number))
        for row in applied.sorted(by: { $0.number < $1.number }) {
            guard let file = byNumber[row.number] else {
                throw Refusal(description: "migration \(row.version)_\(row.name) is applied in the database but its file is gone; put \(row.version)_\(row.name).up.sql back (applied migrations are never removed, only reverted)")
            }
            if file.checksum != row.checksum {
                throw Refusal(description: "\(file.upFile) changed after it was applied (SHA-256 \(row.checksum.prefix(12))… in the database, \(file.checksum.prefix(12))… now); put the applied text back and make the change a new migration")
            }
        }
        var targetNumber = Int.max
        if let target {
            guard let number = Int(target), byNumber[number] != nil else {
                throw Refusal(description: "--to \(target) is not the version of a migration file (versions: \(files.map(\.version).joined(separator: ", ")))")
            }
            if let newest = applied.filter({ !$0.isPartial }).map(\.number).max(), number < newest {
                throw Refusal(description: "--to \(target) is older than the newest applied migration \(applied.first { $0.number == newest }!.version): use migrate-revert --to \(target)")
            }
            targetNumber = number
        }
        let newestApplied = applied.filter { !$0.isPartial }.map(\.number).max() ?? Int.min
        var steps: [Step] = []
        for row in applied where row.isPartial {
            steps.append(Step(file: byNumber[row.number]!, resumeAt: row.statementsDone, resuming: true))
        }
        for file in files where !appliedNumbers.contains(file.number) && file.number <= targetNumber {
            if file.number < newestApplied && !outOfOrder {
                throw Refusal(description: "\(file.upFile) is new but older than the newest applied migration \(applied.first { $0.number == newestApplied }!.version); number it after that one, or run with --out-of-order")
            }
            steps.append(Step(file: file, resumeAt: 0))
        }
        return steps.sorted { $0.file.number < $1.file.number }
    }

    /// The applied migrations to revert, newest first: the last `steps`, or every one
    /// newer than `to`. Refused when one has no down file or is only partly applied.
    public static func revert(files: [MigrationFile], applied: [AppliedMigration], steps: Int?, to target: String?) throws(Refusal) -> [(AppliedMigration, MigrationFile)] {
        let newestFirst = applied.sorted { $0.number > $1.number }
        let chosen: [AppliedMigration]
        if let target {
            guard let number = Int(target) else { throw Refusal(description: "--to \(target) is not a version (digits, like 0003)") }
            if number != 0, !applied.contains(where: { $0.number == number }) {
                throw Refusal(description: "--to \(target) is not an applied version (applied: \(applied.sorted { $0.number < $1.number }.map(\.version).joined(separator: ", ")); 0 reverts all)")
            }
            chosen = newestFirst.filter { $0.number > number }
        } else {
            let count = steps ?? 1
            guard count >= 1 else { throw Refusal(description: "--steps must be at least 1, not \(count)") }
            chosen = Array(newestFirst.prefix(count))
        }
        guard !chosen.isEmpty else { throw Refusal(description: "nothing to revert: " + (applied.isEmpty ? "no migration is applied" : "every applied migration is at or below \(target ?? "")")) }
        let byNumber = Dictionary(files.map { ($0.number, $0) }, uniquingKeysWith: { a, _ in a })
        return try chosen.map { row throws(Refusal) in
            if row.isPartial {
                throw Refusal(description: "\(row.version)_\(row.name) is only partly applied (\(row.statementsDone) statements); finish it with migrate first, then revert it")
            }
            guard let file = byNumber[row.number] else {
                throw Refusal(description: "migration \(row.version)_\(row.name) is applied but its files are gone; put them back to revert it")
            }
            guard file.down != nil else {
                throw Refusal(description: "\(row.version)_\(row.name) has no down file (\(file.downFile)): it cannot be reverted")
            }
            // The down file undoes what the up file did: only if that is what was applied.
            if file.checksum != row.checksum {
                throw Refusal(description: "\(file.upFile) changed after it was applied (SHA-256 \(row.checksum.prefix(12))… in the database, \(file.checksum.prefix(12))… now): its down file may not undo what was applied; put the applied text back to revert it")
            }
            return (row, file)
        }
    }

    /// One line per migration for `migrations status`: applied, partial, pending, changed or missing.
    public static func status(files: [MigrationFile], applied: [AppliedMigration]) -> [(version: String, name: String, state: String, detail: String)] {
        var lines: [(Int, String, String, String, String)] = []
        let rows = Dictionary(applied.map { ($0.number, $0) }, uniquingKeysWith: { a, _ in a })
        for file in files {
            if let row = rows[file.number] {
                let state = row.checksum != file.checksum ? "changed" : row.isPartial ? "partial" : "applied"
                var detail = row.appliedAt ?? ""
                if row.isPartial { detail += " (\(row.statementsDone) statements done)" }
                if state == "changed" { detail += " (file's SHA-256 differs from the applied one)" }
                if !row.transactional { detail += " non-transactional" }
                lines.append((file.number, file.version, file.name, state, detail))
            } else {
                lines.append((file.number, file.version, file.name, "pending", file.down == nil ? "no down file" : ""))
            }
        }
        for row in applied where !files.contains(where: { $0.number == row.number }) {
            lines.append((row.number, row.version, row.name, "missing", "applied, but its file is gone"))
        }
        return lines.sorted { $0.0 < $1.0 }.map { ($0.1, $0.2, $0.3, $0.4) }
    }
}
