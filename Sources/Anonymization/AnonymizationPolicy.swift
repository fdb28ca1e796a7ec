import Foundation
import Yams

/// A masking policy: per table, per column, one rule. Loaded from YAML, then checked
/// against the database's catalog (`plan(for:)`), which names every problem by its path.
///
/// ```yaml
/// strict: true                      # every column of every exported table must be named
/// tables:
///   public.customers:
///     id: keep
///     email: {rule: email, length: 52, case: keep}
///     name: {rule: fake, kind: full_name}
///     phone: {rule: hash, pattern: digits}
///   public.tickets:
///     body: redact
/// references:                       # links by value, not declared as foreign keys
///   - {from: public.tickets.customer_email, to: public.customers.email}
/// k_anonymity:                      # after masking, each combination at least k times
///   public.customers: {quasi_identifiers: [born, zip], k: 5, mode: refuse}
/// ```
public struct AnonymizationPolicy: Sendable {
    public struct Entry: Sendable {
        public var rule: any MaskingRule
        public var path: String
    }
    public var strict: Bool
    /// Table (schema.name) → column → rule.
    public var tables: [String: [String: Entry]]
    public var references: [(from: String, to: String)]
    /// Table → its k-anonymity requirement.
    public var kAnonymity: [String: KAnonymityRequirement] = [:]
    /// SHA-256 of the policy's text: two exports with equal digests used the same policy.
    public var digest: String

    /// Parses the YAML; every problem is collected and thrown at once, each with its path.
    public static func parse(_ text: String, file: String = "policy") throws(AnonymizationError) -> AnonymizationPolicy {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw AnonymizationError("\(file): not valid YAML: \(error)")
        }
        guard let document = root as? [String: Any] else {
            throw AnonymizationError("\(file): expected a mapping with tables: (and strict:, references:)")
        }
        var problems: [String] = []
        for key in document.keys.sorted() where !["strict", "tables", "references", "k_anonymity"].contains(key) {
            problems.append("\(key): unknown setting (a policy has strict, tables, references, k_anonymity)")
        }
        var strict = true
        if let raw = document["strict"] {
            if let b = raw as? Bool { strict = b } else { problems.append("strict: '\(raw)' must be true or false") }
        }
        var tables: [String: [String: Entry]] = [:]
        if let raw = document["tables"] {
            if let map = raw as? [String: Any] {
                for (table, value) in map.sorted(by: { $0.key < $1.key }) {
                    let tablePath = "tables.\(table)"
                    guard table.split(separator: ".").count == 2 else {
                        problems.append("\(tablePath): name tables as schema.table (e.g. public.\(table))")
                        continue
                    }
                    guard let columns = value as? [String: Any] else {
                        problems.append("\(tablePath): expected a mapping of column: rule")
                        continue
                    }
                    var entries: [String: Entry] = [:]
                    for (column, spec) in columns.sorted(by: { $0.key < $1.key }) {
                        let path = "\(tablePath).\(column)"
                        do {
                            entries[column] = Entry(rule: try rule(spec, path: path), path: path)
                        } catch {
                            problems.append(error.message)
                        }
                    }
                    tables[table] = entries
                }
            } else {
                problems.append("tables: expected a mapping of schema.table: {column: rule}")
            }
        }
        var references: [(String, String)] = []
        if let raw = document["references"] {
            if let list = raw as? [Any] {
                for (i, item) in list.enumerated() {
                    guard let map = item as? [String: Any], let from = map["from"] as? String, let to = map["to"] as? String,
                          from.split(separator: ".").count == 3, to.split(separator: ".").count == 3 else {
                        problems.append("references[\(i)]: expected {from: schema.table.column, to: schema.table.column}")
                        continue
                    }
                    references.append((from, to))
                }
            } else {
                problems.append("references: expected a list of {from:, to:}")
            }
        }
        var kAnonymity: [String: KAnonymityRequirement] = [:]
        if let raw = document["k_anonymity"] {
            if let map = raw as? [String: Any] {
                for (table, value) in map.sorted(by: { $0.key < $1.key }) {
                    let path = "k_anonymity.\(table)"
                    guard table.split(separator: ".").count == 2 else {
                        problems.append("\(path): name tables as schema.table (e.g. public.\(table))")
                        continue
                    }
                    guard let spec = value as? [String: Any] else {
                        problems.append("\(path): expected {quasi_identifiers: [column, …], k: N, mode: refuse|report}")
                        continue
                    }
                    for key in spec.keys.sorted() where !["quasi_identifiers", "k", "mode"].contains(key) {
                        problems.append("\(path).\(key): unknown setting (quasi_identifiers, k, mode)")
                    }
                    guard let columns = spec["quasi_identifiers"] as? [Any], !columns.isEmpty, columns.allSatisfy({ $0 is String }) else {
                        problems.append("\(path).quasi_identifiers: expected a list of column names")
                        continue
                    }
                    guard let k = spec["k"] as? Int, k >= 2 else {
                        problems.append("\(path).k: expected a whole number of at least 2")
                        continue
                    }
                    let modeText = (spec["mode"] as? String) ?? "refuse"
                    guard let mode = KAnonymityRequirement.Mode(rawValue: modeText) else {
                        problems.append("\(path).mode: '\(modeText)' is not refuse or report")
                        continue
                    }
                    kAnonymity[table] = KAnonymityRequirement(table: table, columns: columns.map { $0 as! String }, k: k, mode: mode, path: path)
                }
            } else {
                problems.append("k_anonymity: expected a mapping of schema.table: {quasi_identifiers: [...], k: N}")
            }
        }
        if !problems.isEmpty { throw AnonymizationError("\(file): " + problems.joined(separator: "; ")) }
        return AnonymizationPolicy(strict: strict, tables: tables, references: references, kAnonymity: kAnonymity,
                                   digest: sha256Hex(Array(text.utf8)))
    }

    /// `keep`, or `{rule: fake, kind: email}`.
    public static func rule(_ spec: Any, path: String) throws(AnonymizationError) -> any MaskingRule {
        if let name = spec as? String { return try RuleRegistry.make(name, parameters: [:], path: path) }
        // YAML reads a bare `null` as no value at all: here it is the rule of that name.
        if spec is NSNull { return try RuleRegistry.make("null", parameters: [:], path: path) }
        guard let map = spec as? [String: Any], let name = map["rule"] as? String else {
            throw AnonymizationError("\(path): expected a rule name (keep, hash, …) or {rule: NAME, …parameters}")
        }
        // Rules that hold rules take their entry as it is.
        if name == JSONPaths.name { return try JSONPaths(spec: map, path: path) }
        if name == Elements.name { return try Elements(spec: map, path: path) }
        var parameters: [String: String] = [:]
        for (k, v) in map where k != "rule" {
            // A list (`values: [a, b]`) is passed on comma-separated.
            parameters[k] = (v as? [Any]).map { $0.map { "\($0)" }.joined(separator: ",") } ?? "\(v)"
        }
        return try RuleRegistry.make(name, parameters: parameters, path: path)
    }
}

/// What an export does to each column of each table, decided and checked.
public struct AnonymizationPlan: Sendable {
    public struct ColumnPlan: Sendable {
        public var name: String
        public var kind: ValueKind
        public var rule: any MaskingRule
        /// Why this rule: named in the policy, or inherited through a reference.
        public var source: String
    }
    /// Table (schema.name) → its columns in table order.
    public var tables: [String: [ColumnPlan]]
    /// Table → its k-anonymity requirement (exported tables only).
    public var kAnonymity: [String: KAnonymityRequirement] = [:]

    /// Every column of every table kept: an export without a policy.
    public static func keepingEverything(_ catalog: TableCatalog) -> AnonymizationPlan {
        AnonymizationPlan(tables: Dictionary(uniqueKeysWithValues: catalog.tables.map { t in
            (t.qualifiedName, t.columns.map { ColumnPlan(name: $0.name, kind: $0.kind, rule: Keep(), source: "no policy") })
        }))
    }
}

extension AnonymizationPolicy {
    /// Checks the policy against the tables being exported and decides every column:
    /// unknown tables and columns, rules that do not fit a column's type, NULL into a NOT
    /// NULL column, a non-distinct rule on a unique column, different rules on the two
    /// sides of a reference, and (strict) any column nobody decided about. Every problem
    /// is named by its path, all at once.
    /// What the policy names that the database does not have at all, each by where the
    /// policy names it: a misspelt table must not pass silently (its rules would then
    /// protect nothing). `full` is every table of the database, not one export's subset.
    public func unknownTables(in full: TableCatalog) -> [String] {
        var unknown: [String] = []
        for table in tables.keys.sorted() where full.table(table) == nil { unknown.append("tables.\(table)") }
        for table in kAnonymity.keys.sorted() where full.table(table) == nil { unknown.append("k_anonymity.\(table)") }
        for (i, r) in references.enumerated() {
            for (side, path) in [("from", r.from), ("to", r.to)] {
                let parts = path.split(separator: ".")
                guard parts.count == 3 else { continue }
                let table = "\(parts[0]).\(parts[1])"
                if let t = full.table(table) {
                    if t.column(String(parts[2])) == nil { unknown.append("references[\(i)].\(side): \(path) (no such column)") }
                } else {
                    unknown.append("references[\(i)].\(side): \(path)")
                }
            }
        }
        return unknown
    }

    public func plan(for catalog: TableCatalog) throws(AnonymizationError) -> AnonymizationPlan {
        var problems: [String] = []
        var decided: [String: [String: (rule: any MaskingRule, source: String)]] = [:]
        for (table, columns) in tables.sorted(by: { $0.key < $1.key }) {
            guard let t = catalog.table(table) else {
                // A policy may cover more tables than one export takes: only a table that
                // does not exist in the database at all is an error.
                continue
            }
            for (column, entry) in columns.sorted(by: { $0.key < $1.key }) {
                guard let c = t.column(column) else {
                    problems.append("\(entry.path): no column '\(column)' in \(table) (columns: \(t.columns.map(\.name).joined(separator: ", ")))")
                    continue
                }
                decided[table, default: [:]][column] = (entry.rule, entry.path)
                _ = c
            }
        }
        // References: declared foreign keys and the policy's own links by value. The rule on
        // the referenced side decides the referencing side.
        var links: [(from: (String, String), to: (String, String), what: String)] = []
        for fk in catalog.foreignKeys {
            for (a, b) in zip(fk.columns, fk.referencedColumns) { links.append(((fk.table, a), (fk.referenced, b), "foreign key \(fk.name)")) }
        }
        for r in references {
            let f = r.from.split(separator: "."), t = r.to.split(separator: ".")
            links.append(((f[0] + "." + f[1], String(f[2])), (t[0] + "." + t[1], String(t[2])), "references: \(r.from) → \(r.to)"))
        }
        for link in links {
            for (side, (table, column)) in [("referencing", link.from), ("referenced", link.to)] {
                guard let own = decided[table]?[column], own.rule.computedByServer else { continue }
                let message = "\(own.source): \(type(of: own.rule).name) cannot keep \(link.what) joinable (it is the \(side) side): use hash, fake or email, which map equal values equally"
                if !problems.contains(message) { problems.append(message) }
            }
        }
        for _ in 0..<max(1, links.count) {  // chains of references settle in as many passes
            for link in links {
                guard let target = decided[link.to.0]?[link.to.1] else { continue }
                if let own = decided[link.from.0]?[link.from.1] {
                    if own.rule.identity != target.rule.identity {
                        let message = "\(own.source) (\(own.rule.identity)) and \(target.source) (\(target.rule.identity)) are the two sides of \(link.what): give them the same rule, or leave the referencing side out (it inherits)"
                        if !problems.contains(message) { problems.append(message) }
                    }
                } else if catalog.table(link.from.0) != nil {
                    decided[link.from.0, default: [:]][link.from.1] = (target.rule, "\(target.source) via \(link.what)")
                }
            }
        }
        var plan: [String: [AnonymizationPlan.ColumnPlan]] = [:]
        for t in catalog.tables {
            var columns: [AnonymizationPlan.ColumnPlan] = []
            var undecided: [String] = []
            for c in t.columns {
                guard let (decidedRule, source) = decided[t.qualifiedName]?[c.name] else {
                    if strict { undecided.append(c.name) } else {
                        columns.append(.init(name: c.name, kind: c.kind, rule: Keep(), source: "not in the policy (strict: false)"))
                    }
                    continue
                }
                var rule = decidedRule
                let ruleType = type(of: rule)
                if var elements = rule as? Elements {
                    // The element rule is checked against the element type, as a column's rule is.
                    if let elementKind = c.elementKind, elementKind != .other {
                        let eachType = type(of: elements.each)
                        if !eachType.accepts.contains(elementKind) {
                            problems.append("\(source).each: rule \(eachType.name) does not fit the elements of \(t.qualifiedName).\(c.name) (\(c.elementType ?? "?")); it takes \(eachType.accepts.map(\.rawValue).sorted().joined(separator: ", "))")
                        }
                        elements.elementKind = elementKind
                        rule = elements
                    } else {
                        problems.append("\(source): elements fits array columns of text, numbers, dates, uuids, booleans or json; \(t.qualifiedName).\(c.name) is \(c.type)")
                    }
                } else if let json = rule as? JSONPaths, json.other == nil, strict {
                    problems.append("\(source).other: a strict policy must say what json does with values no path names: other: null, drop or keep")
                }
                if !(rule is Elements), !ruleType.accepts.contains(c.kind) {
                    problems.append("\(source): rule \(ruleType.name) does not fit column \(t.qualifiedName).\(c.name) of type \(c.type) (it takes \(ruleType.accepts.map(\.rawValue).sorted().joined(separator: ", ")))")
                }
                if rule is Null && c.notNull {
                    problems.append("\(source): column \(t.qualifiedName).\(c.name) is NOT NULL; null would break the import: use another rule")
                }
                if !rule.keepsDistinct, t.uniqueKeys.contains(where: { $0.contains(c.name) }) {
                    problems.append("\(source): column \(t.qualifiedName).\(c.name) is unique and rule \(rule.identity) can give two rows the same value; use one that keeps distinct values distinct: keep, null, hash (full length or pattern: digits), email with length: 52 and case: keep (a plain UNIQUE tells Foo@x.com from foo@x.com), or fake kind: uuid")
                }
                columns.append(.init(name: c.name, kind: c.kind, rule: rule, source: source))
            }
            if !undecided.isEmpty {
                problems.append("tables.\(t.qualifiedName): strict policy, and no rule for column(s) \(undecided.joined(separator: ", ")): name each (keep counts) or set strict: false")
            }
            plan[t.qualifiedName] = columns
        }
        // redact's values: columns the export masks itself (so their masked values are known here).
        for (table, columns) in plan {
            for column in columns {
                guard let redact = column.rule as? Redact else { continue }
                for path in redact.valueColumns {
                    let parts = path.split(separator: ".")
                    let owner = String(parts[0] + "." + parts[1])
                    guard let target = plan[owner]?.first(where: { $0.name == String(parts[2]) }) else {
                        problems.append("\(column.source).values: \(path) is not an exported column (export its table too)")
                        continue
                    }
                    if target.rule.computedByServer {
                        problems.append("\(column.source).values: \(path) is masked by the server (\(target.rule.identity)); redact needs a rule dbq applies")
                    }
                    _ = table
                }
            }
        }
        var kAnonymity: [String: KAnonymityRequirement] = [:]
        for (table, requirement) in self.kAnonymity.sorted(by: { $0.key < $1.key }) {
            guard let t = catalog.table(table) else { continue }
            let missing = requirement.columns.filter { t.column($0) == nil }
            if !missing.isEmpty {
                problems.append("\(requirement.path).quasi_identifiers: no column(s) \(missing.joined(separator: ", ")) in \(table) (columns: \(t.columns.map(\.name).joined(separator: ", ")))")
                continue
            }
            kAnonymity[table] = requirement
        }
        if !problems.isEmpty { throw AnonymizationError(problems.joined(separator: "; ")) }
        return AnonymizationPlan(tables: plan, kAnonymity: kAnonymity)
    }
}
