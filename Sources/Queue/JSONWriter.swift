/// Compact JSON text with sorted object keys, written straight into bytes: what
/// `JSONEncoder` with `.sortedKeys` and `.withoutEscapingSlashes` writes for envelopes and
/// results (as values; byte for byte where the number formats agree), without the
/// encoder's per-value machinery — a push writes one envelope per job.
struct JSONWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ s: String) {
        bytes.append(0x22)
        var s = s
        s.withUTF8 { utf8 in
            var run = 0
            for (i, b) in utf8.enumerated() where b == 0x22 || b == 0x5C || b < 0x20 {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<i]))
                switch b {
                case 0x22: bytes += [0x5C, 0x22]
                case 0x5C: bytes += [0x5C, 0x5C]
                case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
                case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
                case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
                case 0x08: bytes += [0x5C, UInt8(ascii: "b")]
                case 0x0C: bytes += [0x5C, UInt8(ascii: "f")]
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]]
                }
                run = i + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run...]))
        }
        bytes.append(0x22)
    }

    mutating func integer(_ n: Int) {
        bytes.append(contentsOf: String(n).utf8)
    }

    /// Integral values as integers (as `JSONValue` encodes them); others in Swift's
    /// shortest round-tripping form; NaN and infinities (which JSON has not) as null.
    mutating func number(_ n: Double) {
        if !n.isFinite { raw("null"); return }
        if n.rounded() == n && abs(n) < 1e15 { integer(Int(n)); return }
        bytes.append(contentsOf: n.description.utf8)
    }

    mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let b): b ? raw("true") : raw("false")
        case .number(let n): number(n)
        case .string(let s): string(s)
        case .array(let a):
            bytes.append(UInt8(ascii: "["))
            for (i, e) in a.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                value(e)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let o):
            bytes.append(UInt8(ascii: "{"))
            for (i, key) in o.keys.sorted().enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                string(key)
                bytes.append(UInt8(ascii: ":"))
                value(o[key]!)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// `"key":` after a comma unless it is the first.
    mutating func key(_ k: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(0x22)
        raw(k)
        raw("\":")
    }
}

extension JSONValue {
    /// Compact JSON with sorted keys (written by `JSONWriter`).
    public var jsonText: String {
        var w = JSONWriter(capacity: 64)
        w.value(self)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

extension JobEnvelope {
    /// The envelope as JSON, keys sorted, dates in milliseconds since 1970: what
    /// `JobEnvelope.encoder` writes, written directly.
    public func encoded() -> String {
        var w = JSONWriter(capacity: 320)
        w.bytes.append(UInt8(ascii: "{"))
        w.key("enqueuedAt", first: true); w.number(enqueuedAt.timeIntervalSince1970 * 1000)
        w.key("enqueuedBy"); w.string(enqueuedBy)
        w.key("id"); w.string(id)
        w.key("kind"); w.string(kind)
        w.key("maxAttempts"); w.integer(maxAttempts)
        w.key("payload"); w.value(payload)
        w.key("priority"); w.integer(priority)
        w.key("queue"); w.string(queue)
        if let runAt { w.key("runAt"); w.number(runAt.timeIntervalSince1970 * 1000) }
        w.key("timeoutSeconds"); w.number(timeoutSeconds)
        if let traceparent { w.key("traceparent"); w.string(traceparent) }
        if let uniqueKey { w.key("uniqueKey"); w.string(uniqueKey) }
        w.key("version"); w.integer(version)
        w.bytes.append(UInt8(ascii: "}"))
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
