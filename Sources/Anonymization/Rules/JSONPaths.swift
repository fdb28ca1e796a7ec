import Foundation

/// `json`: a `json` or `jsonb` column masked inside, by path.
///
/// ```yaml
/// profile:
///   rule: json
///   paths:
///     $.email: {rule: email, length: 52, case: keep}
///     $.phones[*]: {rule: hash, pattern: digits}
///     $.address.zip: {rule: hash, length: 8}
///     $.born: {rule: noise, days: 30, type: date}   # type: what the strings there hold
///     $.history: null                               # a whole subtree
///   other: null                                     # null | keep | drop
/// ```
///
/// A path is `$` followed by steps: `.name`, `["any name"]`, `[*]` (every element), `.*`
/// (every member), `[N]` (one element). Each value in the document is masked by the first
/// path that names it exactly; a value no path names is masked by `other` — `null` writes
/// JSON null in place of every string, number and boolean (member names are kept), `drop`
/// removes the member or element, `keep` keeps it (and makes the column one the manifest
/// lists as partly raw). A strict policy must say which. A rule at a path that holds an
/// object or array applies to it whole only if it is `null`, `constant` or `keep`; any
/// other rule there, or a rule that cannot read the value's type, stops the export naming
/// the column, the row and the path — never the value.
public struct JSONPaths: MaskingRule {
    public static let name = "json"
    public static let summary = "json/jsonb masked inside by path ($.email, $.phones[*]); other: null|keep|drop for the rest"
    public static let accepts: Set<ValueKind> = [.json]

    public enum Other: String, Sendable { case null, keep, drop }

    public enum Step: Equatable, Sendable, CustomStringConvertible {
        case member(String), anyMember, element(Int), anyElement

        public var description: String {
            switch self {
            case .member(let name):
                name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && !name.isEmpty ? ".\(name)" : "[\"\(name)\"]"
            case .anyMember: ".*"
            case .element(let n): "[\(n)]"
            case .anyElement: "[*]"
            }
        }
    }

    public struct PathRule: Sendable {
        public var path: [Step]
        public var text: String
        public var rule: any MaskingRule
        /// What the strings at this path hold, when not text (`type: date`).
        public var stringKind: ValueKind
    }

    public var paths: [PathRule]
    /// Nil only under `strict: false` (then `keep`); `plan` refuses nil under `strict`.
    public var other: Other?

    /// A flat entry (`profile: json`) has no paths: the policy must give them.
    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        throw AnonymizationError("\(path): json takes its paths as a mapping: {rule: json, paths: {$.email: email, …}, other: null|keep|drop}")
    }

    public init(paths: [PathRule], other: Other?) {
        self.paths = paths
        self.other = other
    }

    /// Builds the rule from its policy entry (`paths:` a mapping of path → rule).
    public init(spec: [String: Any], path: String) throws(AnonymizationError) {
        for key in spec.keys.sorted() where !["rule", "paths", "other"].contains(key) {
            throw AnonymizationError("\(path).\(key): json takes paths and other")
        }
        if let raw = spec["other"] {
            let text = raw is NSNull ? "null" : "\(raw)"
            guard let other = Other(rawValue: text) else {
                throw AnonymizationError("\(path).other: '\(text)' is not null, keep or drop")
            }
            self.other = other
        } else {
            other = nil
        }
        var rules: [PathRule] = []
        if let raw = spec["paths"] {
            guard let map = raw as? [String: Any] else {
                throw AnonymizationError("\(path).paths: expected a mapping of $.path: rule")
            }
            for (text, ruleSpec) in map.sorted(by: { $0.key < $1.key }) {
                let entry = "\(path).paths.\(text)"
                let steps = try Self.parsePath(text, entry: entry)
                var kind = ValueKind.text
                var ruleSpec = ruleSpec
                if var m = ruleSpec as? [String: Any], let t = m.removeValue(forKey: "type") {
                    guard let k = ValueKind(rawValue: "\(t)"), [.text, .integer, .decimal, .date, .timestamp, .uuid, .boolean].contains(k) else {
                        throw AnonymizationError("\(entry).type: '\(t)' is not text, integer, decimal, date, timestamp, uuid or boolean")
                    }
                    kind = k
                    ruleSpec = m
                }
                let rule = try AnonymizationPolicy.rule(ruleSpec, path: entry)
                if rule is JSONPaths || rule is Elements || rule.computedByServer {
                    throw AnonymizationError("\(entry): \(type(of: rule).name) cannot be used inside json (arrays inside a document are named with [*])")
                }
                rules.append(PathRule(path: steps, text: text, rule: rule, stringKind: kind))
            }
        }
        if rules.isEmpty && other == nil {
            throw AnonymizationError("\(path): json needs paths: or other: (what to do with values no path names)")
        }
        paths = rules
    }

    /// `$.a.b[*]["c d"][0].*` → steps.
    static func parsePath(_ text: String, entry: String) throws(AnonymizationError) -> [Step] {
        let c = Array(text)
        func bad(_ why: String) -> AnonymizationError {
            AnonymizationError("\(entry): '\(text)' is not a path (\(why)); write $.name, $.list[*], $[\"odd name\"], $.map.*")
        }
        guard c.first == "$" else { throw bad("it must start with $") }
        var steps: [Step] = []
        var i = 1
        while i < c.count {
            if c[i] == "." {
                i += 1
                if i < c.count, c[i] == "*" { steps.append(.anyMember); i += 1; continue }
                var name = ""
                while i < c.count, c[i] != ".", c[i] != "[" { name.append(c[i]); i += 1 }
                guard !name.isEmpty else { throw bad("a name is empty") }
                steps.append(.member(name))
            } else if c[i] == "[" {
                i += 1
                guard i < c.count else { throw bad("a [ is not closed") }
                if c[i] == "*" {
                    guard i + 1 < c.count, c[i + 1] == "]" else { throw bad("[* is not closed") }
                    steps.append(.anyElement)
                    i += 2
                } else if c[i] == "\"" || c[i] == "'" {
                    let quote = c[i]
                    i += 1
                    var name = ""
                    while i < c.count, c[i] != quote { name.append(c[i]); i += 1 }
                    guard i + 1 < c.count, c[i + 1] == "]" else { throw bad("a quoted name is not closed") }
                    steps.append(.member(name))
                    i += 2
                } else {
                    var digits = ""
                    while i < c.count, c[i].isASCII, c[i].isNumber { digits.append(c[i]); i += 1 }
                    guard let n = Int(digits), i < c.count, c[i] == "]" else { throw bad("[ holds *, a number or a quoted name") }
                    steps.append(.element(n))
                    i += 1
                }
            } else {
                throw bad("'\(c[i])' where . or [ was expected")
            }
        }
        return steps
    }

    public var identity: String {
        "json(" + paths.map { "\($0.text)=\($0.rule.identity)" + ($0.stringKind == .text ? "" : ":\($0.stringKind)") }.joined(separator: ";")
            + ";other=\(other?.rawValue ?? "keep"))"
    }
    public var keepsDistinct: Bool { false }
    /// True when some values are written as they are: `other: keep`, or `keep` at a path.
    public var keepsSomeValues: Bool { (other ?? .keep) == .keep || paths.contains { $0.rule is Keep } }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        try prepared(kind: kind, key: key).apply(value)
    }

    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        PreparedJSON(rule: self, key: key)
    }
}

/// `json` bound to a key: each path's rule prepared once per kind it may meet.
final class PreparedJSON: PreparedRule {
    let rule: JSONPaths
    let other: JSONPaths.Other
    /// Per path, per kind the rule accepts: its prepared form.
    let prepared: [[ValueKind: any PreparedRule]]

    init(rule: JSONPaths, key: AnonymizationKey) {
        self.rule = rule
        other = rule.other ?? .keep
        prepared = rule.paths.map { p in
            var byKind: [ValueKind: any PreparedRule] = [:]
            for kind in type(of: p.rule).accepts where kind != .json && kind != .other {
                byKind[kind] = p.rule.prepared(kind: kind, key: key)
            }
            return byKind
        }
    }

    enum Location { case member(String), element(Int) }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) -> Bool {
        guard let document = JSONText(parsing: String(decoding: value, as: UTF8.self)) else {
            throw .unreadable(JSONPaths.name, as: "JSON")
        }
        var location: [Location] = []
        guard let masked = try mask(document, at: &location) else {
            out += "null".utf8
            return true
        }
        masked.write(into: &out)
        return true
    }

    /// The index of the first path naming `location` exactly.
    func match(_ location: [Location]) -> Int? {
        rule.paths.firstIndex { p in
            p.path.count == location.count && zip(p.path, location).allSatisfy { step, at in
                switch (step, at) {
                case (.anyMember, .member), (.anyElement, .element): true
                case let (.member(a), .member(b)): a == b
                case let (.element(a), .element(b)): a == b
                default: false
                }
            }
        }
    }

    static func describe(_ location: [Location]) -> String {
        "$" + location.map { at in
            switch at {
            case .member(let name): JSONPaths.Step.member(name).description
            case .element(let n): "[\(n)]"
            }
        }.joined()
    }

    /// The masked value at `location`; nil when it is dropped.
    func mask(_ value: JSONText, at location: inout [Location]) throws(AnonymizationError) -> JSONText? {
        if let index = match(location) {
            return try apply(index, to: value, at: location)
        }
        switch value {
        case .object(let members):
            var kept: [(key: String, value: JSONText)] = []
            for m in members {
                location.append(.member(m.key))
                defer { location.removeLast() }
                if let v = try mask(m.value, at: &location) { kept.append((m.key, v)) }
            }
            return .object(kept)
        case .array(let items):
            var kept: [JSONText] = []
            for (n, item) in items.enumerated() {
                location.append(.element(n))
                defer { location.removeLast() }
                if let v = try mask(item, at: &location) { kept.append(v) }
            }
            return .array(kept)
        case .null:
            return .null
        case .string, .number, .bool:
            switch other {
            case .keep: return value
            case .null: return .null
            case .drop: return nil
            }
        }
    }

    func apply(_ index: Int, to value: JSONText, at location: [Location]) throws(AnonymizationError) -> JSONText {
        let p = rule.paths[index]
        let text: String, kind: ValueKind
        switch value {
        case .null: return .null
        case .object, .array:
            if p.rule is Keep { return value }
            if p.rule is Null { return .null }
            if let constant = p.rule as? Constant { return .string(constant.value) }
            throw AnonymizationError("json path \(Self.describe(location)) (\(p.text)) holds an \(value.isObject ? "object" : "array"), which \(type(of: p.rule).name) cannot mask whole: name what is inside (\(p.text)[*] or \(p.text).name), or use null")
        case .string(let s): (text, kind) = (s, p.stringKind)
        case .number(let n): (text, kind) = (n, n.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? .decimal : .integer)
        case .bool(let b): (text, kind) = (b ? "true" : "false", .boolean)
        }
        if p.rule is Keep { return value }
        guard let prepared = prepared[index][kind] else {
            throw AnonymizationError("json path \(Self.describe(location)) (\(p.text)) holds a value of kind \(kind), which \(type(of: p.rule).name) does not take (it takes \(type(of: p.rule).accepts.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        let masked: String?
        do throws(AnonymizationError) {
            masked = try prepared.apply(text)
        } catch {
            throw AnonymizationError("json path \(Self.describe(location)) (\(p.text)): " + error.message)
        }
        guard let masked else { return .null }
        switch value {
        case .number where JSONText.isNumber(masked): return .number(masked)
        case .bool where masked == "true" || masked == "t": return .bool(true)
        case .bool where masked == "false" || masked == "f": return .bool(false)
        default: return .string(masked)
        }
    }
}

extension JSONText {
    var isObject: Bool { if case .object = self { true } else { false } }
}
