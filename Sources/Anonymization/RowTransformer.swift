/// Applies a table's plan to COPY text lines: one line in, one line out (in the export's
/// format), in one pass and with one row in memory.
public struct RowTransformer: Sendable {
    let columns: [AnonymizationPlan.ColumnPlan]
    let key: AnonymizationKey?
    let format: RowFormat
    let names: [String]
    let kinds: [ValueKind]
    /// Counts quasi-identifier combinations after masking, when the table has a requirement.
    public let groups: KAnonymityGroups?
    /// True when every column is kept (or computed by the server), the format is COPY and
    /// nothing is counted: lines pass through untouched (no decoding).
    public let isIdentity: Bool

    /// `key` may be nil only when every column is kept.
    public init(columns: [AnonymizationPlan.ColumnPlan], key: AnonymizationKey?, format: RowFormat = .copy, groups: KAnonymityGroups? = nil) {
        self.columns = columns
        self.key = key
        self.format = format
        self.groups = groups
        names = columns.map(\.name)
        kinds = columns.map(\.kind)
        let masksNothing = columns.allSatisfy { $0.rule is Keep || $0.rule.computedByServer }
        isIdentity = masksNothing && format == .copy && groups == nil
        precondition(masksNothing || key != nil, "a masking plan needs a key")
    }

    /// What the table's stream starts with (CSV's header line).
    public var header: [UInt8] { format.header(names) }

    /// Transforms one line (without its newline) and appends the result (with one).
    public func transform(_ line: ArraySlice<UInt8>, into out: inout [UInt8]) throws(AnonymizationError) {
        if isIdentity {
            out += line
            out.append(0x0A)
            return
        }
        var fields = CopyText.decode(line)
        guard fields.count == columns.count else {
            throw AnonymizationError("a row has \(fields.count) fields, the table \(columns.count) columns")
        }
        for (i, column) in columns.enumerated() where !(column.rule is Keep) && !column.rule.computedByServer {
            guard let key else { throw AnonymizationError("no key to mask with") }
            if let value = fields[i] { fields[i] = column.rule.apply(value, kind: column.kind, key: key) }
        }
        groups?.observe(fields)
        format.encode(fields, names: names, kinds: kinds, into: &out)
    }
}
