/// `fake`: a realistic value chosen from the keyed hash of the original (`kind:` one of
/// first_name, last_name, full_name, email, phone, street_address, city, zip, company,
/// iban, ipv4, uuid). The same original always gets the same fake.
public struct Fake: MaskingRule {
    public static let name = "fake"
    public static let summary = "a realistic fake (name, email, phone, address, city, zip, company, IBAN, IPv4, UUID), chosen by the keyed hash of the original"
    public static let accepts: Set<ValueKind> = [.text, .uuid]
    public static let kinds = ["first_name", "last_name", "full_name", "email", "phone", "street_address", "city", "zip", "company", "iban", "ipv4", "uuid"]
    let kind: String

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["kind"], parameters, path: path)
        guard let kind = parameters["kind"] else {
            throw AnonymizationError("\(path): fake needs kind: (one of \(Self.kinds.joined(separator: ", ")))")
        }
        guard Self.kinds.contains(kind) else {
            throw AnonymizationError("\(path).kind: '\(kind)' is not a fake kind; use one of \(Self.kinds.joined(separator: ", "))")
        }
        self.kind = kind
    }

    public var identity: String { "fake:\(kind)" }
    /// Only a UUID is distinct (122 keyed bits); names and cities repeat by nature.
    public var keepsDistinct: Bool { kind == "uuid" }

    public func apply(_ value: String, kind columnKind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        try prepared(kind: columnKind, key: key).apply(value)
    }

    public func prepared(kind columnKind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        FakeValue(hash: key.keyedHash(domain: identity), kind: FakeValue.Kind(rawValue: kind) ?? .uuid)
    }

    /// A German-shaped IBAN with valid check digits (mod 97), so validators accept it.
    static func iban(bank: String, account: String) -> String {
        var out: [UInt8] = []
        FakeValue.appendIBAN(bban: Array((bank + account).utf8), into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// `fake`, bound to a key: the keyed digest of the original picks each part.
final class FakeValue: PreparedRule, @unchecked Sendable {
    // @unchecked Sendable: `words` and `spans` are written in `init` only and freed in
    // `deinit`; every other property is immutable.
    var addsNoControl: Bool { true }
    enum Kind: String {
        case firstName = "first_name", lastName = "last_name", fullName = "full_name", email, phone
        case streetAddress = "street_address", city, zip, company, iban, ipv4, uuid
    }
    let hash: KeyedHash
    let kind: Kind
    /// The lists this kind picks from, flattened into one allocation of this instance's:
    /// a pick copies bytes and counts no reference (lists shared by the threads that mask
    /// would bounce their reference counts between cores on every value).
    private let words: UnsafeMutableBufferPointer<UInt8>
    /// Per word, where it lies in `words`.
    private let spans: UnsafeMutableBufferPointer<Range<Int>>
    /// Per list, its first word in `spans` and how many words it has.
    private let lists: [(first: Int, count: Int)]

    init(hash: KeyedHash, kind: Kind) {
        self.hash = hash
        self.kind = kind
        let used: [[[UInt8]]] = switch kind {
        case .firstName: [FakeData.first]
        case .lastName: [FakeData.last]
        case .fullName: [FakeData.first, FakeData.last]
        case .email: [FakeData.firstLower, FakeData.lastLower, [FakeData.atExample]]
        case .phone: [[FakeData.phonePrefix]]
        case .streetAddress: [FakeData.street, FakeData.streetKinds]
        case .city: [FakeData.city]
        case .company: [FakeData.last, FakeData.companyKinds]
        case .zip, .iban, .ipv4, .uuid: []
        }
        let all = used.flatMap { $0 }
        words = .allocate(capacity: max(1, all.reduce(0) { $0 + $1.count }))
        spans = .allocate(capacity: max(1, all.count))
        var at = 0
        for (i, word) in all.enumerated() {
            _ = UnsafeMutableBufferPointer(rebasing: words[at..<(at + word.count)]).initialize(from: word)
            spans[i] = at..<(at + word.count)
            at += word.count
        }
        var first = 0
        lists = used.map { list in
            defer { first += list.count }
            return (first, list.count)
        }
    }

    deinit {
        words.deallocate()
        spans.deallocate()
    }

    /// Appends word `index` of list `list`.
    @inline(__always)
    private func append(list: Int, word index: Int, into out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(rebasing: words[spans[lists[list].first + index]]))
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        hash.digest(value).withUnsafeBytes { d in
            func pick(_ list: Int, _ i: Int) { append(list: list, word: Int(Bytes.word(d, at: i) % UInt64(lists[list].count)), into: &out) }
            func number(_ i: Int, digits: Int) {
                var n = Bytes.word(d, at: i)
                for _ in 0..<digits {
                    out.append(UInt8(48 + n % 10))
                    n /= 10
                }
            }
            switch kind {
            case .firstName: pick(0, 0)
            case .lastName: pick(0, 0)
            case .fullName:
                pick(0, 0)
                out.append(0x20)
                pick(1, 8)
            case .email:
                pick(0, 0)
                out.append(0x2E)
                pick(1, 8)
                out.append(0x2E)
                // The last 8 of the digest's 52 base32 characters.
                Bytes.appendBase32(d, chars: 44..<52, into: &out)
                append(list: 2, word: 0, into: &out)
            case .phone:
                append(list: 0, word: 0, into: &out)
                number(0, digits: 3)
                out.append(0x20)
                number(8, digits: 4)
            case .streetAddress:
                number(0, digits: 3)
                out.append(0x20)
                pick(0, 8)
                out.append(0x20)
                pick(1, 16)
            case .city: pick(0, 0)
            case .zip: number(0, digits: 5)
            case .company:
                pick(0, 0)
                out.append(0x20)
                pick(1, 8)
            case .iban:
                let from = out.count
                number(0, digits: 8)
                number(8, digits: 10)
                let bban = Array(out[from...])
                out.removeSubrange(from...)
                Self.appendIBAN(bban: bban, into: &out)
            case .ipv4:
                out += [0x31, 0x30, 0x2E]
                Bytes.appendDecimal(Int64(d[0]), into: &out)
                out.append(0x2E)
                Bytes.appendDecimal(Int64(d[1]), into: &out)
                out.append(0x2E)
                Bytes.appendDecimal(Int64(max(1, Int(d[2]) % 255)), into: &out)
            case .uuid: UUIDHash.appendUUID(d, into: &out)
            }
        }
        return true
    }

    /// "DE", check digits ((bban ‖ "DE00" as digits) mod 97, D=13, E=14), the BBAN.
    static func appendIBAN(bban: [UInt8], into out: inout [UInt8]) {
        var remainder = 0
        for c in bban + Array("131400".utf8) { remainder = (remainder * 10 + Int(c - 0x30)) % 97 }
        let check = 98 - remainder
        out += [0x44, 0x45]
        if check < 10 { out.append(0x30) }
        Bytes.appendDecimal(Int64(check), into: &out)
        out += bban
    }
}

enum FakeData {
    static let firstNames = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Edsger", "Margaret", "Dennis", "Frances", "Ken",
                             "Radia", "Donald", "Hedy", "John", "Katherine", "Tim", "Sophie", "Niklaus", "Jean", "Leslie",
                             "Anita", "Bjarne", "Carol", "Guido", "Mary", "James", "Lynn", "Whitfield", "Shafi", "Ivan"]
    static let lastNames = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Hamilton", "Ritchie", "Allen", "Thompson",
                            "Perlman", "Knuth", "Lamarr", "Backus", "Johnson", "Berners", "Wilson", "Wirth", "Sammet", "Lamport",
                            "Borg", "Stroustrup", "Shaw", "Rossum", "Keller", "Gosling", "Conway", "Diffie", "Goldwasser", "Sutherland"]
    static let streets = ["Oak", "Maple", "Cedar", "Elm", "Pine", "Birch", "Willow", "Chestnut", "Walnut", "Spruce", "Hazel", "Linden"]
    static let cities = ["Springfield", "Riverton", "Fairview", "Greenville", "Kingston", "Milton", "Clinton", "Salem", "Georgetown",
                         "Ashland", "Burlington", "Dover", "Franklin", "Hudson", "Lakewood", "Madison", "Newport", "Oxford"]

    // As bytes, for `FakeValue`.
    static let first = firstNames.map { Array($0.utf8) }
    static let last = lastNames.map { Array($0.utf8) }
    static let firstLower = firstNames.map { Array($0.lowercased().utf8) }
    static let lastLower = lastNames.map { Array($0.lowercased().utf8) }
    static let street = streets.map { Array($0.utf8) }
    static let city = cities.map { Array($0.utf8) }
    static let streetKinds = ["Street", "Road", "Avenue", "Lane"].map { Array($0.utf8) }
    static let companyKinds = ["Ltd", "Inc", "GmbH", "Group", "& Sons"].map { Array($0.utf8) }
    static let atExample = Array("@example.com".utf8)
    static let phonePrefix = Array("+1 555 ".utf8)
}
