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
    /// Per column: true when dbq masks it here (not keep, not computed by the server).
    let masks: [Bool]
    /// COPY in and COPY out, nothing counted: kept fields are copied as they are, only
    /// masked ones are decoded.
    let fieldwise: Bool

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
        masks = columns.map { !($0.rule is Keep) && !$0.rule.computedByServer }
        fieldwise = format == .copy && groups == nil
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
        if fieldwise { return try transformFields(line, into: &out) }
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

    /// The COPY-to-COPY path: a raw tab always separates fields (a tab in a value is
    /// written `\t`), so kept fields are copied byte for byte and only masked ones are
    /// decoded, masked and encoded again.
    func transformFields(_ line: ArraySlice<UInt8>, into out: inout [UInt8]) throws(AnonymizationError) {
        var column = 0
        var start = line.startIndex
        var i = line.startIndex
        while true {
            let atEnd = i == line.endIndex
            if atEnd || line[i] == 0x09 {
                guard column < columns.count else {
                    throw AnonymizationError("a row has more fields than the table's \(columns.count) columns")
                }
                if column > 0 { out.append(0x09) }
                let field = line[start..<i]
                if !masks[column] || (field.count == 2 && field.first == 0x5C && field.last == UInt8(ascii: "N")) {
                    out += field
                } else if let key {
                    let value = CopyText.decode(field).first ?? nil
                    CopyText.encodeField(value.flatMap { columns[column].rule.apply($0, kind: kinds[column], key: key) }, into: &out)
                } else {
                    throw AnonymizationError("no key to mask with")
                }
                column += 1
                if atEnd { break }
                start = i + 1
            }
            i += 1
        }
        guard column == columns.count else {
            throw AnonymizationError("a row has \(column) fields, the table \(columns.count) columns")
        }
        out.append(0x0A)
    }
}
