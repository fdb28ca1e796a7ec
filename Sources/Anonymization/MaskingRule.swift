/// One masking rule: a deterministic function of (key, rule, original value).
///
/// Each rule lives in its own file under `Rules/`, declares the column kinds it accepts
/// and whether it keeps distinct values distinct, and is built from its policy entry by
/// `RuleRegistry`, which names any problem by its path.
public protocol MaskingRule: Sendable {
    /// The rule's name in a policy (`hash`, `fake`, …).
    static var name: String { get }
    /// Why a reader would pick it, for `dbq anonymize rules` and error messages.
    static var summary: String { get }
    /// The column kinds it can produce a valid value for.
    static var accepts: Set<ValueKind> { get }
    /// Builds the rule from its parameters; `path` names the entry in errors.
    init(parameters: [String: String], path: String) throws(AnonymizationError)

    /// The rule and its parameters, as one string: the domain its keyed hashes are
    /// separated by, and what the manifest records per column. Two columns with equal
    /// identities map equal originals to equal outputs (references stay joinable).
    var identity: String { get }
    /// True when distinct originals always give distinct outputs: the rule may be used
    /// on a column with a unique index.
    var keepsDistinct: Bool { get }
    /// True for rules the database computes in the export's query (`sql`, `shuffle`):
    /// the value arrives masked and `apply` is not called.
    var computedByServer: Bool { get }
    /// The masked value of a non-NULL original; nil for NULL. Throws `unreadable` when the
    /// rule cannot read the value as its kind: the export then stops, never writing the
    /// original in its place.
    func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String?
    /// The rule bound to `key` for a column of `kind`, masking bytes (see `PreparedRule`).
    func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule
}

extension MaskingRule {
    public var computedByServer: Bool { false }
}

extension MaskingRule {
    /// Reads an integer parameter, naming the entry if it is not one.
    static func int(_ parameters: [String: String], _ name: String, default value: Int, in range: ClosedRange<Int>, path: String) throws(AnonymizationError) -> Int {
        guard let raw = parameters[name] else { return value }
        guard let n = Int(raw), range.contains(n) else {
            throw AnonymizationError("\(path).\(name): '\(raw)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    /// Refuses parameters the rule does not know (a typo must not pass silently).
    static func only(_ known: Set<String>, _ parameters: [String: String], path: String) throws(AnonymizationError) {
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            throw AnonymizationError("\(path).\(unknown): \(name) takes no parameter '\(unknown)'" + (known.isEmpty ? "" : " (it takes: \(known.sorted().joined(separator: ", ")))"))
        }
    }
}
