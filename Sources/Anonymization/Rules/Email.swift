/// `email`: the local part becomes `length` keyed base32 characters; the domain is kept
/// (`keep_domain: true`) or becomes `example.com`. With `length: 52` (the whole keyed
/// digest) distinct addresses stay distinct: use it on a unique column.
public struct Email: MaskingRule {
    public static let name = "email"
    public static let summary = "keyed local part; the domain kept or example.com"
    public static let accepts: Set<ValueKind> = [.text]
    let keepDomain: Bool
    let length: Int

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["keep_domain", "length"], parameters, path: path)
        switch parameters["keep_domain"] {
        case nil, "false"?: keepDomain = false
        case "true"?: keepDomain = true
        case let other?: throw AnonymizationError("\(path).keep_domain: '\(other)' must be true or false")
        }
        length = try Self.int(parameters, "length", default: 16, in: 8...52, path: path)
    }

    public var identity: String { "email:\(length):\(keepDomain)" }
    public var keepsDistinct: Bool { length == 52 }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? {
        let at = value.lastIndex(of: "@")
        let domain = keepDomain ? at.map { String(value[value.index(after: $0)...]).lowercased() } ?? "example.com" : "example.com"
        // The whole address, lower-cased, is what is hashed: Foo@X.com and foo@x.com agree.
        return "u" + base32(key.mac(domain: "email:\(length)", value.lowercased()), count: length) + "@" + domain
    }
}
