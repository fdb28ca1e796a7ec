import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A small DOM of an XML document: enough for S3's replies, read with Foundation's parser.
struct XMLNode: Sendable {
    var name: String
    var text: String
    var children: [XMLNode]

    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }
    func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }
    /// The text of a direct child, if present.
    subscript(_ name: String) -> String? { child(name)?.text }

    /// Parses `bytes`; nil if they are not well-formed XML.
    static func parse(_ bytes: [UInt8]) -> XMLNode? {
        let builder = Builder()
        let parser = XMLParser(data: Data(bytes))
        parser.delegate = builder
        guard parser.parse(), let root = builder.stack.first?.children.first else { return nil }
        return root
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var stack: [XMLNode] = [XMLNode(name: "#document", text: "", children: [])]

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            stack.append(XMLNode(name: elementName, text: "", children: []))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack[stack.count - 1].text += string
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            let node = stack.removeLast()
            stack[stack.count - 1].children.append(node)
        }
    }
}

extension String {
    /// The text with `& < > " '` escaped, for XML bodies.
    var xmlEscaped: String {
        var out = ""
        for c in self {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}
