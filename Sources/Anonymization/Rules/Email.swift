/// `email`: the local part becomes `length` keyed base32 characters; the domain is kept
/// (`keep_domain: true`) or becomes `example.com`. The address is lower-cased first
/// (`Foo@X.com` and `foo@x.com` mask alike), unless `case: keep`. With `length: 52` (the
/// whole keyed digest) and `case: keep`, distinct addresses stay distinct: what a unique
/// column needs (a plain UNIQUE is case-sensitive).
public struct Email: MaskingRule {
    public static let name = "email"
    public static let summary = "keyed local part; the domain kept or example.com"
    public static let accepts: Set<ValueKind> = [.text]
    let keepDomain: Bool
    let length: Int
    let keepCase: Bool

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["keep_domain", "length", "case"], parameters, path: path)
        switch parameters["case"] {
        case nil, "fold"?: keepCase = false
        case "keep"?: keepCase = true
        case let other?: throw AnonymizationError("\(path).case: '\(other)' must be fold (the default: Foo@X.com masks as foo@x.com) or keep")
        }
        switch parameters["keep_domain"] {
        case nil, "false"?: keepDomain = false
        case "true"?: keepDomain = true
        case let other?: throw AnonymizationError("\(path).keep_domain: '\(other)' must be true or false")
        }
        length = try Self.int(parameters, "length", default: 16, in: 8...52, path: path)
    }

    public var identity: String { "email:\(length):\(keepDomain)" + (keepCase ? ":keep-case" : "") }
    public var keepsDistinct: Bool { length == 52 && keepCase }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        try prepared(kind: kind, key: key).apply(value)
    }

    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule { hashing(key) }

    func hashing(_ key: AnonymizationKey) -> EmailHash {
        EmailHash(hash: key.keyedHash(domain: "email:\(length)"), length: length, keepDomain: keepDomain, keepCase: keepCase)
    }
}

/// `email`: "u" + the keyed base32 of the whole address, lower-cased (Foo@X.com and
/// foo@x.com agree) unless `keepCase`, then "@" and the domain (kept, lower-cased) or
/// example.com. An address already in lower case masks alike either way.
final class EmailHash: PreparedRule {
    var addsNoControl: Bool { true }
    let hash: KeyedHash
    let length: Int
    let keepDomain: Bool
    let keepCase: Bool
    /// Static bytes: appending them counts no reference.
    static let example: StaticString = "example.com"

    init(hash: KeyedHash, length: Int, keepDomain: Bool, keepCase: Bool = false) {
        self.hash = hash
        self.length = length
        self.keepDomain = keepDomain
        self.keepCase = keepCase
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard Bytes.isASCII(value) else {
            // Unicode lower-casing and characters are `String`'s.
            let text = String(decoding: value, as: UTF8.self)
            out.append(0x75)
            let lowered = Array((keepCase ? text : text.lowercased()).utf8)
            lowered.withUnsafeBytes { raw in
                hash.digest(raw).withUnsafeBytes { Bytes.appendBase32($0, count: length, into: &out) }
            }
            out.append(0x40)
            if keepDomain, let at = text.lastIndex(of: "@") {
                out += String(text[text.index(after: at)...]).lowercased().utf8
            } else {
                Self.example.withUTF8Buffer { out.append(contentsOf: $0) }
            }
            return true
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, value.count)) { buffer in
            for i in 0..<value.count {
                let b = value[i]
                buffer[i] = !keepCase && b >= 0x41 && b <= 0x5A ? b | 0x20 : b
            }
            append(lowered: UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<value.count]), into: &out)
        }
        return true
    }

    private func append(lowered: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.append(0x75)
        hash.digest(lowered).withUnsafeBytes { Bytes.appendBase32($0, count: length, into: &out) }
        out.append(0x40)
        if keepDomain, let at = lowered.lastIndex(of: 0x40) {
            out.append(contentsOf: lowered[(at + 1)...])
        } else {
            Self.example.withUTF8Buffer { out.append(contentsOf: $0) }
        }
    }
}
