import CPgQuery
import Foundation

/// One statement of a SQL text, as PostgreSQL's parser read it.
public struct ParsedStatement: Sendable, Equatable {
    /// The statement's own text, with the comments before it (from the end of the one before).
    public var text: String
    /// The 1-based line of its first token in the whole text.
    public var line: Int
    /// Its node type (`CreateStmt`, `IndexStmt`, …) and body.
    public var type: String
    public var body: ParseNode
}

/// A text PostgreSQL's parser does not accept: its message and where.
public struct SQLSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var line: Int
    public var column: Int
    public var description: String { "line \(line), column \(column): \(message)" }
    public init(message: String, line: Int, column: Int) {
        self.message = message
        self.line = line
        self.column = column
    }
}

/// PostgreSQL 15's parser (libpg_query): splits a text into statements and gives each
/// its parse tree; never a regular expression.
public enum SQLParser {
    public static func parse(_ sql: String) throws(SQLSyntaxError) -> [ParsedStatement] {
        let bytes = Array(sql.utf8)
        let result = pg_query_parse(sql)
        defer { pg_query_free_parse_result(result) }
        if let error = result.error {
            let message = error.pointee.message.map { String(cString: $0) } ?? "syntax error"
            let offset = max(0, Int(error.pointee.cursorpos) - 1)
            let (line, column) = position(bytes, offset: min(offset, bytes.count))
            throw SQLSyntaxError(message: message, line: line, column: column)
        }
        guard let tree = result.parse_tree,
              let root = try? JSONDecoder().decode(ParseNode.self, from: Data(String(cString: tree).utf8)) else {
            throw SQLSyntaxError(message: "the parser's output could not be read", line: 1, column: 1)
        }
        var statements: [ParsedStatement] = []
        for raw in root["stmts"]?.array ?? [] {
            guard let (type, body) = raw["stmt"]?.typed else { continue }
            let start = min(raw["stmt_location"]?.int ?? 0, bytes.count)
            // The last statement without a semicolon has no length: it runs to the end.
            let length = raw["stmt_len"]?.int ?? 0
            let end = length == 0 ? bytes.count : min(bytes.count, start + length)
            let first = firstToken(bytes, from: start, to: end)
            statements.append(ParsedStatement(text: String(decoding: bytes[start..<end], as: UTF8.self), line: position(bytes, offset: first).line,
                                              type: type, body: body))
        }
        return statements
    }

    /// 1-based line and column of a byte offset.
    static func position(_ bytes: [UInt8], offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in bytes[0..<offset] {
            if byte == 0x0A { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
        }
        return (line, column)
    }

    /// The offset of the first byte that is neither blank nor inside a comment.
    static func firstToken(_ bytes: [UInt8], from start: Int, to end: Int) -> Int {
        var i = start
        while i < end {
            let b = bytes[i]
            if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1; continue }
            if b == 0x2D, i + 1 < end, bytes[i + 1] == 0x2D {
                while i < end, bytes[i] != 0x0A { i += 1 }
                continue
            }
            if b == 0x2F, i + 1 < end, bytes[i + 1] == 0x2A {
                i += 2
                var depth = 1
                while i < end, depth > 0 {
                    if bytes[i] == 0x2A, i + 1 < end, bytes[i + 1] == 0x2F { depth -= 1; i += 2 }
                    else if bytes[i] == 0x2F, i + 1 < end, bytes[i + 1] == 0x2A { depth += 1; i += 2 }
                    else { i += 1 }
                }
                continue
            }
            return i
        }
        return start
    }
}
