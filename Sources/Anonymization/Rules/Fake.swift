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

    public func apply(_ value: String, kind columnKind: ValueKind, key: AnonymizationKey) -> String? {
        let d = key.mac(domain: identity, value)
        func pick(_ list: [String], _ i: Int) -> String { list[Int(word(d, at: i) % UInt64(list.count))] }
        func number(_ i: Int, digits: Int) -> String {
            var n = word(d, at: i), s = ""
            for _ in 0..<digits { s.append(Character(Unicode.Scalar(UInt8(48 + n % 10)))); n /= 10 }
            return s
        }
        switch kind {
        case "first_name": return pick(FakeData.firstNames, 0)
        case "last_name": return pick(FakeData.lastNames, 0)
        case "full_name": return pick(FakeData.firstNames, 0) + " " + pick(FakeData.lastNames, 8)
        case "email":
            return (pick(FakeData.firstNames, 0) + "." + pick(FakeData.lastNames, 8)).lowercased() + "." + String(base32(d).suffix(8)) + "@example.com"
        case "phone": return "+1 555 " + number(0, digits: 3) + " " + number(8, digits: 4)
        case "street_address": return number(0, digits: 3) + " " + pick(FakeData.streets, 8) + " " + pick(["Street", "Road", "Avenue", "Lane"], 16)
        case "city": return pick(FakeData.cities, 0)
        case "zip": return number(0, digits: 5)
        case "company": return pick(FakeData.lastNames, 0) + " " + pick(["Ltd", "Inc", "GmbH", "Group", "& Sons"], 8)
        case "iban": return Self.iban(bank: number(0, digits: 8), account: number(8, digits: 10))
        case "ipv4": return "10.\(d[0]).\(d[1]).\(max(1, Int(d[2]) % 255))"
        default: return Hash.uuid(d)
        }
    }

    /// A German-shaped IBAN with valid check digits (mod 97), so validators accept it.
    static func iban(bank: String, account: String) -> String {
        let bban = bank + account
        // Check digits: (bban + "DE00" as digits) mod 97, D=13, E=14.
        var remainder = 0
        for c in bban + "131400" { remainder = (remainder * 10 + Int(String(c))!) % 97 }
        let check = 98 - remainder
        return "DE" + (check < 10 ? "0" : "") + String(check) + bban
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
}
