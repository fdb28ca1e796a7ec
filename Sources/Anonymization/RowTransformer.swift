/// Applies a table's plan to COPY text lines: one line in, one line out, in one pass and
/// with one row in memory.
public struct RowTransformer: Sendable {
    let columns: [AnonymizationPlan.ColumnPlan]
    let key: AnonymizationKey?
    /// True when every column is kept: lines pass through untouched (no decoding).
    public let isIdentity: Bool

    /// `key` may be nil only when every column is kept.
    public init(columns: [AnonymizationPlan.ColumnPlan], key: AnonymizationKey?) {
        self.columns = columns
        self.key = key
        isIdentity = columns.allSatisfy { $0.rule is Keep }
        precondition(isIdentity || key != nil, "a masking plan needs a key")
    }

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
        guard let key else { throw AnonymizationError("no key to mask with") }
        for (i, column) in columns.enumerated() where !(column.rule is Keep) {
            if let value = fields[i] { fields[i] = column.rule.apply(value, kind: column.kind, key: key) }
        }
        CopyText.encode(fields, into: &out)
    }
}
