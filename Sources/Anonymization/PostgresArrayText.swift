/// PostgreSQL's text form of an array (`{a,"b c",NULL}`, `{{1,2},{3,4}}`,
/// `[0:1]={x,y}`), read into its elements and written back with every element quoted:
/// what the `elements` rule masks one element at a time.
///
/// The delimiter is a comma, which every type dbq masks by element uses (only `box` has
/// another, and `elements` refuses types it cannot read).
public struct PostgresArrayText: Equatable, Sendable {
    public indirect enum Node: Equatable, Sendable {
        case element(String?)
        case array([Node])
    }

    /// `[0:1]=` and the like: dimensions that do not start at 1, kept as they were.
    public var dimensions: String
    public var root: [Node]

    public init(dimensions: String = "", root: [Node]) {
        self.dimensions = dimensions
        self.root = root
    }

    /// Reads an array's text; nil when it is not one (the caller refuses the value).
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        var i = 0
        var dimensions = ""
        if bytes.first == UInt8(ascii: "[") {
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            dimensions = String(decoding: bytes[...equals], as: UTF8.self)
            i = equals + 1
        }
        guard let (nodes, end) = Self.parseArray(bytes, at: i), end == bytes.count else { return nil }
        self.init(dimensions: dimensions, root: nodes)
    }

    /// The text PostgreSQL reads back as the same array: every element quoted (`"` and `\`
    /// escaped), NULL bare.
    public var text: String {
        var out = dimensions
        Self.write(root, into: &out)
        return out
    }

    /// The array with every non-NULL element replaced by `transform`'s result (nil: NULL).
    public func mapElements<E: Error>(_ transform: (String) throws(E) -> String?) throws(E) -> PostgresArrayText {
        func map(_ nodes: [Node]) throws(E) -> [Node] {
            var result: [Node] = []
            result.reserveCapacity(nodes.count)
            for node in nodes {
                switch node {
                case .element(nil): result.append(.element(nil))
                case .element(let value?): result.append(.element(try transform(value)))
                case .array(let inner): result.append(.array(try map(inner)))
                }
            }
            return result
        }
        return PostgresArrayText(dimensions: dimensions, root: try map(root))
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C }

    /// `{…}` from `start`: its nodes and the index after its `}`.
    private static func parseArray(_ b: [UInt8], at start: Int) -> ([Node], Int)? {
        var i = start
        while i < b.count, isSpace(b[i]) { i += 1 }
        guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        var nodes: [Node] = []
        while i < b.count, isSpace(b[i]) { i += 1 }
        if i < b.count, b[i] == UInt8(ascii: "}") { return ([], i + 1) }
        while i < b.count {
            while i < b.count, isSpace(b[i]) { i += 1 }
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: "{") {
                guard let (inner, end) = parseArray(b, at: i) else { return nil }
                nodes.append(.array(inner))
                i = end
            } else if b[i] == UInt8(ascii: "\"") {
                var value: [UInt8] = []
                i += 1
                while i < b.count, b[i] != UInt8(ascii: "\"") {
                    if b[i] == UInt8(ascii: "\\") { i += 1; guard i < b.count else { return nil } }
                    value.append(b[i])
                    i += 1
                }
                guard i < b.count else { return nil }
                i += 1
                nodes.append(.element(String(decoding: value, as: UTF8.self)))
            } else {
                var value: [UInt8] = []
                var escaped = false
                var lastKept = 0  // length of `value` up to its last escaped or non-space byte
                while i < b.count, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}") {
                    if b[i] == UInt8(ascii: "{") || b[i] == UInt8(ascii: "\"") { return nil }
                    if b[i] == UInt8(ascii: "\\") {
                        i += 1
                        guard i < b.count else { return nil }
                        escaped = true
                        value.append(b[i])
                        lastKept = value.count
                    } else {
                        value.append(b[i])
                        if !isSpace(b[i]) { lastKept = value.count }
                    }
                    i += 1
                }
                value.removeLast(value.count - lastKept)
                let text = String(decoding: value, as: UTF8.self)
                guard !text.isEmpty else { return nil }
                nodes.append(.element(!escaped && text.uppercased() == "NULL" ? nil : text))
            }
            while i < b.count, isSpace(b[i]) { i += 1 }
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { return (nodes, i + 1) }
            return nil
        }
        return nil
    }

    private static func write(_ nodes: [Node], into out: inout String) {
        out += "{"
        for (i, node) in nodes.enumerated() {
            if i > 0 { out += "," }
            switch node {
            case .element(nil): out += "NULL"
            case .element(let value?):
                out += "\""
                for c in value.unicodeScalars {
                    if c == "\"" || c == "\\" { out += "\\" }
                    out.unicodeScalars.append(c)
                }
                out += "\""
            case .array(let inner): write(inner, into: &out)
            }
        }
        out += "}"
    }
}
