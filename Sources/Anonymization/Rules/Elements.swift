/// `elements`: an array column masked element by element with a rule for its element type.
///
/// ```yaml
/// phones: {rule: elements, each: {rule: hash, pattern: digits}}   # text[]
/// scores: {rule: elements, each: {rule: noise, percent: 5}}        # integer[]
/// ```
///
/// Every dimension is walked; NULL elements stay NULL; the array's bounds are kept. The
/// element rule is checked against the element type (a domain read as its base), as a
/// column's rule is against its type. An element the rule cannot read stops the export,
/// naming the column and the row — never the value.
public struct Elements: MaskingRule {
    public static let name = "elements"
    public static let summary = "array columns masked element by element: {rule: elements, each: RULE}"
    public static let accepts: Set<ValueKind> = [.other]

    public let each: any MaskingRule
    /// The element type's kind, set when the policy is planned against the catalog.
    public var elementKind: ValueKind = .other

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        throw AnonymizationError("\(path): elements takes the rule for each element as a mapping: {rule: elements, each: hash}")
    }

    public init(each: any MaskingRule, elementKind: ValueKind = .other) {
        self.each = each
        self.elementKind = elementKind
    }

    public init(spec: [String: Any], path: String) throws(AnonymizationError) {
        for key in spec.keys.sorted() where !["rule", "each"].contains(key) {
            throw AnonymizationError("\(path).\(key): elements takes each (the rule for every element)")
        }
        guard let inner = spec["each"] else {
            throw AnonymizationError("\(path): elements needs each: (the rule for every element, e.g. each: hash)")
        }
        let rule = try AnonymizationPolicy.rule(inner, path: "\(path).each")
        if rule is Elements || rule.computedByServer {
            throw AnonymizationError("\(path).each: \(type(of: rule).name) cannot mask one element (every dimension is already walked)")
        }
        each = rule
    }

    public var identity: String { "elements(\(each.identity))" }
    public var keepsDistinct: Bool { false }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        try prepared(kind: kind, key: key).apply(value)
    }

    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        PreparedElements(each: each.prepared(kind: elementKind, key: key))
    }
}

final class PreparedElements: PreparedRule {
    let each: any PreparedRule

    init(each: any PreparedRule) { self.each = each }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) -> Bool {
        guard let array = PostgresArrayText(String(decoding: value, as: UTF8.self)) else {
            throw .unreadable(Elements.name, as: "an array")
        }
        var element = 0
        let masked = try array.mapElements { (text: String) throws(AnonymizationError) -> String? in
            element += 1
            do throws(AnonymizationError) {
                return try each.apply(text)
            } catch {
                throw AnonymizationError("element \(element): " + error.message)
            }
        }
        out += masked.text.utf8
        return true
    }
}
