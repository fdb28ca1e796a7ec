import Foundation

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
    /// Per column: its rule bound to the key, for the columns dbq masks.
    let prepared: [(any PreparedRule)?]

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
        prepared = zip(columns, masks).map { column, masked in
            masked ? key.map { column.rule.prepared(kind: column.kind, key: $0) } : nil
        }
        precondition(masksNothing || key != nil, "a masking plan needs a key")
    }

    /// This transformer with rules prepared anew: one per thread that masks, so threads
    /// share no reference-counted state on the path of every value.
    public func forAnotherThread() -> RowTransformer {
        RowTransformer(columns: columns, key: key, format: format, groups: groups)
    }

    /// What the table's stream starts with (CSV's header line).
    public var header: [UInt8] { format.header(names) }

    /// Transforms one line (without its newline) and appends the result (with one).
    public func transform(_ line: ArraySlice<UInt8>, into out: inout [UInt8]) throws(AnonymizationError) {
        let result = line.withUnsafeBytes { raw in Result { () throws(AnonymizationError) in try transform(raw, into: &out) } }
        try result.get()
    }

    /// `transform` of a line in memory the caller owns: no reference to count per line
    /// (threads masking runs of one buffer would contend on its count).
    public func transform(_ line: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) {
        var batch = PermutationBatch(deferring: false)
        try transform(line, into: &out, batch: &batch)
    }

    /// Every line of `text` (each ending in a newline; bytes after the last one are not
    /// read) transformed and appended, as `transform` would one by one; returns how many.
    /// Long numbers' permutations wait until the end and run eight side by side (see
    /// `PermutationBatch`): the same bytes, less CPU. What the export masks a chunk with.
    public func transform(lines text: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) -> Int {
        guard let base = text.baseAddress else { return 0 }
        var batch = PermutationBatch(deferring: true)
        var rows = 0
        var start = 0
        while start < text.count, let hit = memchr(base + start, 0x0A, text.count - start) {
            let newline = UnsafeRawPointer(hit) - base
            do throws(AnonymizationError) {
                try transform(UnsafeRawBufferPointer(rebasing: text[start..<newline]), into: &out, batch: &batch)
            } catch {
                var error = error
                error.row = rows + 1
                throw error
            }
            rows += 1
            start = newline + 1
        }
        batch.run(on: &out)
        return rows
    }

    private func transform(_ line: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) throws(AnonymizationError) {
        if isIdentity {
            out.append(contentsOf: line)
            out.append(0x0A)
            return
        }
        if fieldwise { return try transformFields(line, into: &out, batch: &batch) }
        var fields = CopyText.decode(ArraySlice(line))
        guard fields.count == columns.count else {
            throw AnonymizationError("a row has \(fields.count) fields, the table \(columns.count) columns")
        }
        for i in columns.indices where masks[i] {
            guard let rule = prepared[i] else { throw AnonymizationError("no key to mask with") }
            do throws(AnonymizationError) {
                if let value = fields[i] { fields[i] = try rule.apply(value) }
            } catch {
                throw error.in(column: names[i])
            }
        }
        groups?.observe(fields)
        format.encode(fields, names: names, kinds: kinds, into: &out)
    }

    /// The COPY-to-COPY path: a raw tab always separates fields (a tab in a value is
    /// written `\t`), so kept fields are copied byte for byte and only masked ones are
    /// decoded, masked and encoded again.
    func transformFields(_ raw: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) throws(AnonymizationError) {
        let columnCount = columns.count
        let counted = Result { () throws(AnonymizationError) -> Int in
            var column = 0
            var start = 0
            while true {
                // The next tab, or the end of the line.
                let end = raw.baseAddress.flatMap { base in
                    memchr(base + start, 0x09, raw.count - start).map { UnsafeRawPointer($0) - base }
                } ?? raw.count
                guard column < columnCount else {
                    throw AnonymizationError("a row has more fields than the table's \(columnCount) columns")
                }
                if column > 0 { out.append(0x09) }
                let field = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                if !masks[column] || (field.count == 2 && field[0] == 0x5C && field[1] == UInt8(ascii: "N")) {
                    out.append(contentsOf: field)
                } else if let rule = prepared[column] {
                    do throws(AnonymizationError) {
                        try Self.mask(field, with: rule, into: &out, batch: &batch)
                    } catch {
                        throw error.in(column: names[column])
                    }
                } else {
                    throw AnonymizationError("no key to mask with")
                }
                column += 1
                if end == raw.count { return column }
                start = end + 1
            }
        }
        let fields = try counted.get()
        guard fields == columnCount else {
            throw AnonymizationError("a row has \(fields) fields, the table \(columnCount) columns")
        }
        out.append(0x0A)
    }

    /// One COPY field masked: decoded only if it has an escape, escaped again only if the
    /// masked bytes need it, NULL as `\N`.
    private static func mask(_ field: UnsafeRawBufferPointer, with rule: any PreparedRule, into out: inout [UInt8],
                             batch: inout PermutationBatch) throws(AnonymizationError) {
        let from = out.count
        let escaped = memchr(field.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, 0x5C, field.count) != nil
        let present = try escaped
            ? CopyText.decodeField(ArraySlice(field)).withUnsafeBytes { bytes in
                Result { () throws(AnonymizationError) in try rule.mask(bytes, into: &out, batch: &batch) }
            }.get()
            : rule.mask(field, into: &out, batch: &batch)
        if !present {
            out += [0x5C, UInt8(ascii: "N")]
        } else if (escaped || !rule.addsNoControl) && out[from...].contains(where: { $0 == 0x5C || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            // Escaping moves the masked bytes: numbers waiting to be written over go first.
            batch.run(on: &out)
            let masked = Array(out[from...])
            out.removeSubrange(from...)
            CopyText.encodeField(bytes: masked, into: &out)
        }
    }
}
