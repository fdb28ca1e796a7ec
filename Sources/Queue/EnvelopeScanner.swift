import Foundation

/// Reads an envelope's header fields and the byte range of its payload in one pass over
/// the JSON, without building a tree: a worker reads an envelope per job, and Foundation's
/// decoder spent more time on the header than the job on its work. Anything it does not
/// expect (an escape in a key or a header string, a repeated field, a number of another
/// shape) returns nil, and the caller decodes with `JSONDecoder` instead, which also words
/// the errors: this is a fast path, never a second judge of what is valid.
enum EnvelopeScanner {
    struct Fields {
        var header: EnvelopeHeader
        var payload: Range<Int>
    }

    static func scan(_ bytes: UnsafeRawBufferPointer) -> Fields? {
        var s = Scanner(bytes: bytes)
        var id: String?, kind: String?, queue: String?, version: Int?, maxAttempts: Int?, timeout: Double?, payload: Range<Int>?
        s.whitespace()
        guard s.take(UInt8(ascii: "{")) else { return nil }
        s.whitespace()
        if s.take(UInt8(ascii: "}")) { return nil }
        while true {
            s.whitespace()
            guard let key = s.plainString() else { return nil }
            s.whitespace()
            guard s.take(UInt8(ascii: ":")) else { return nil }
            s.whitespace()
            switch key {
            case "id": guard id == nil, let v = s.plainString() else { return nil }; id = v
            case "kind": guard kind == nil, let v = s.plainString() else { return nil }; kind = v
            case "queue": guard queue == nil, let v = s.plainString() else { return nil }; queue = v
            case "version": guard version == nil, let v = s.integer() else { return nil }; version = v
            case "maxAttempts": guard maxAttempts == nil, let v = s.integer() else { return nil }; maxAttempts = v
            case "timeoutSeconds": guard timeout == nil, let v = s.number() else { return nil }; timeout = v
            case "payload":
                guard payload == nil else { return nil }
                let start = s.i
                guard s.skipValue() else { return nil }
                payload = start..<s.i
            default:
                guard s.skipValue() else { return nil }
            }
            s.whitespace()
            if s.take(UInt8(ascii: ",")) { continue }
            guard s.take(UInt8(ascii: "}")) else { return nil }
            break
        }
        s.whitespace()
        guard s.i == bytes.count, let id, let kind, let queue, let version, let maxAttempts, let timeout, let payload else { return nil }
        return Fields(header: EnvelopeHeader(id: id, kind: kind, version: version, queue: queue, maxAttempts: maxAttempts, timeoutSeconds: timeout),
                      payload: payload)
    }

    private struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var i = 0

        var current: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func whitespace() {
            while let b = current, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 }
        }

        mutating func take(_ b: UInt8) -> Bool {
            guard current == b else { return false }
            i += 1
            return true
        }

        /// A string without escapes (nil otherwise: the slow path reads those).
        mutating func plainString() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while let b = current {
                if b == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                    i += 1
                    return text
                }
                if b == UInt8(ascii: "\\") || b < 0x20 { return nil }
                i += 1
            }
            return nil
        }

        mutating func integer() -> Int? {
            let start = i
            if current == UInt8(ascii: "-") { i += 1 }
            var value = 0
            var digits = 0
            while let b = current, b >= 0x30 && b <= 0x39 {
                guard digits < 18 else { return nil }
                value = value * 10 + Int(b - 0x30)
                digits += 1
                i += 1
            }
            guard digits > 0, !(digits > 1 && bytes[bytes[start] == UInt8(ascii: "-") ? start + 1 : start] == 0x30) else { return nil }
            if let b = current, b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") { return nil }
            return bytes[start] == UInt8(ascii: "-") ? -value : value
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard i + count <= bytes.count else { return false }
            for k in 0..<count where bytes[i + k] != word.utf8Start[k] { return false }
            i += count
            return true
        }

        /// A JSON number (no leading '+', no leading zeros, digits after '.' and 'e').
        mutating func number() -> Double? {
            let start = i
            if current == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            while let b = current, b >= 0x30 && b <= 0x39 { i += 1 }
            guard i > intStart, !(i - intStart > 1 && bytes[intStart] == 0x30) else { return nil }
            if current == UInt8(ascii: ".") {
                i += 1
                let fraction = i
                while let b = current, b >= 0x30 && b <= 0x39 { i += 1 }
                guard i > fraction else { return nil }
            }
            if let e = current, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
                i += 1
                if let sign = current, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { i += 1 }
                let exponent = i
                while let b = current, b >= 0x30 && b <= 0x39 { i += 1 }
                guard i > exponent else { return nil }
            }
            return Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        }

        /// Past one JSON value of any kind (strings with escapes, nested objects and arrays).
        mutating func skipValue() -> Bool {
            guard let first = current else { return false }
            switch first {
            case UInt8(ascii: "\""):
                i += 1
                while let b = current {
                    i += 1
                    if b == UInt8(ascii: "\\") { i += 1 } else if b == UInt8(ascii: "\"") { return true } else if b < 0x20 { return false }
                }
                return false
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                // Brackets must pair (a stack of what each one opened); scalars inside are
                // read by the decoder that takes the payload.
                var open: [UInt8] = []
                while let b = current {
                    switch b {
                    case UInt8(ascii: "\""):
                        guard skipValue() else { return false }
                        continue
                    case UInt8(ascii: "{"): open.append(UInt8(ascii: "}"))
                    case UInt8(ascii: "["): open.append(UInt8(ascii: "]"))
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        guard open.popLast() == b else { return false }
                        if open.isEmpty { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default:
                return number() != nil
            }
        }
    }
}
