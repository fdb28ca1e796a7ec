import DBQSupport
import Foundation

/// A node of PostgreSQL's parse tree as libpg_query prints it (JSON): objects keyed by
/// field name, node types as one-key objects (`{"CreateStmt": {…}}`).
public typealias ParseNode = JSONValue

/// Reading a parse tree: fields by name, typed nodes, every node of a type below.
extension JSONValue {
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool { if case .bool(let b) = self { return b }; return false }
    public var int: Int? { if case .number(let n) = self { return Int(n) }; return nil }
    public var double: Double? { if case .number(let n) = self { return n }; return nil }

    /// Any JSON text (EXPLAIN's, say) as nodes.
    public static func json(_ text: String) -> ParseNode? { try? JSONDecoder().decode(ParseNode.self, from: Data(text.utf8)) }
    public var array: [ParseNode] { if case .array(let a) = self { return a }; return [] }

    /// A one-key node's type and body (`CreateStmt`, {…}).
    public var typed: (type: String, body: ParseNode)? {
        if case .object(let fields) = self, fields.count == 1, let (key, value) = fields.first, key.first?.isUppercase == true {
            return (key, value)
        }
        return nil
    }

    /// The body of a node of `type` (this node being `{type: body}`), or nil.
    public func node(_ type: String) -> ParseNode? { typed?.type == type ? typed?.body : nil }

    /// Every node of `type` anywhere below (and at) this one, depth first.
    public func all(_ type: String) -> [ParseNode] {
        var found: [ParseNode] = []
        func visit(_ n: ParseNode) {
            switch n {
            case .object(let fields):
                if let body = fields[type], fields.count == 1 { found.append(body) }
                for key in fields.keys.sorted() { visit(fields[key]!) }
            case .array(let items): items.forEach(visit)
            default: break
            }
        }
        visit(self)
        return found
    }

    /// `String` nodes' values in a list (`[{"String": {"sval": "a"}}, …]` → ["a", …]).
    public var names: [String] { array.compactMap { $0.node("String")?["sval"]?.string } }
}
