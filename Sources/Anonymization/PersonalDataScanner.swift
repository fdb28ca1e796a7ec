import Foundation

/// Decides, from a column's name, type and a sample of its values, whether it looks
/// personal and which rule a starting policy should give it, with the reason (pure).
/// `dbq anonymize scan` runs it over sampled tables and writes the policy.
public enum PersonalDataScanner {
    public struct Suggestion: Sendable, Equatable {
        /// The rule as a policy writes it: `keep`, `{rule: email, length: 52}`.
        public var rule: String
        public var reason: String
        public var personal: Bool
    }

    /// Column name words (split at `_`, lower case) and what they suggest.
    static let byName: [(words: [String], rule: String, distinctRule: String?, what: String)] = [
        (["email", "e_mail", "mail", "email_address"], "{rule: email, length: 52}", "{rule: email, length: 52, case: keep}",
         "an email address (full length: equal wherever the address appears)"),
        (["phone", "mobile", "tel", "telephone", "fax", "cell", "msisdn"], "{rule: hash, pattern: digits}", nil, "a phone number"),
        (["first_name", "firstname", "given_name", "forename"], "{rule: fake, kind: first_name}", "hash", "a first name"),
        (["last_name", "lastname", "surname", "family_name"], "{rule: fake, kind: last_name}", "hash", "a last name"),
        (["full_name", "fullname", "contact_name", "customer_name", "person_name", "display_name"], "{rule: fake, kind: full_name}", "hash", "a person's name"),
        (["address", "street", "street_address", "address_line", "address1", "address2"], "{rule: fake, kind: street_address}", "hash", "a street address"),
        (["city", "town"], "{rule: fake, kind: city}", "hash", "a city (a quasi-identifier)"),
        (["zip", "zipcode", "zip_code", "postcode", "postal_code", "plz"], "{rule: mask, keep_first: 2, keep_last: 0}", "hash", "a postal code (a quasi-identifier)"),
        (["birth", "birthday", "birthdate", "birth_date", "date_of_birth", "dob", "born"], "{rule: generalize, to: year}", nil, "a birth date"),
        (["ssn", "national_id", "nationalid", "passport", "passport_number", "tax_id", "taxid", "nin", "social_security", "id_number", "personal_number"],
         "hash", "hash", "a national identifier"),
        (["iban", "bank_account", "account_number"], "{rule: fake, kind: iban}", "hash", "a bank account"),
        (["card", "card_number", "credit_card", "cc_number", "pan"], "{rule: hash, pattern: digits}", nil, "a card number"),
        (["ip", "ip_address", "ipaddress", "last_ip", "remote_addr"], "{rule: fake, kind: ipv4}", "hash", "an IP address"),
        (["password", "password_hash", "token", "secret", "api_key"], "hash", "hash", "a secret"),
        (["body", "comment", "comments", "note", "notes", "message", "description", "text", "remarks"], "{rule: redact, email_length: 52}", nil, "free text that may quote emails and phone numbers"),
    ]

    static let email = try! NSRegularExpression(pattern: #"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$"#)
    static let emailInside = try! NSRegularExpression(pattern: #"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"#)
    static let phone = try! NSRegularExpression(pattern: #"^\+?[\d\s.\-()]{7,20}$"#)
    static let phoneInside = try! NSRegularExpression(pattern: #"\+?\(?\d[\d\s.\-()]{5,}\d"#)
    static let ipInside = try! NSRegularExpression(pattern: #"\b(?:\d{1,3}\.){3}\d{1,3}\b|(?:[0-9A-Fa-f]{1,4}:){3,7}[0-9A-Fa-f]{1,4}|[0-9A-Fa-f]*::[0-9A-Fa-f:]+"#)

    /// A value of `type` that holds nothing (a NOT NULL column's placeholder).
    static func placeholder(_ type: String) -> String {
        if type.hasSuffix("[]") { return "{}" }
        switch type {
        case "inet", "cidr": return "0.0.0.0"
        case "json", "jsonb": return "{}"
        default: return ""
        }
    }

    static let iban = try! NSRegularExpression(pattern: #"^[A-Z]{2}\d{2}[A-Z0-9 ]{11,30}$"#)
    static let personName = try! NSRegularExpression(pattern: #"^\p{Lu}\p{Ll}+(?:[ '\-]\p{Lu}\p{Ll}+){1,3}$"#)

    static func matches(_ pattern: NSRegularExpression, _ text: String, whole: Bool = true) -> Bool {
        let range = NSRange(location: 0, length: (text as NSString).length)
        return pattern.firstMatch(in: text, range: range) != nil
    }

    /// Luhn's check: card numbers pass it, most other digit strings do not.
    static func luhn(_ digits: [Int]) -> Bool {
        var sum = 0
        for (i, d) in digits.reversed().enumerated() { sum += i % 2 == 1 ? (d * 2 > 9 ? d * 2 - 9 : d * 2) : d }
        return sum % 10 == 0
    }

    public static func suggest(table: String, column: TableCatalog.Column, unique: Bool, inReference: Bool, samples: [String]) -> Suggestion {
        let name = column.name.lowercased()
        let words = name.split(separator: "_").map(String.init)
        let kind = column.kind
        func fits(_ rule: String) -> Bool {
            guard let parsed = try? AnonymizationPolicy.rule(yamlValue(rule), path: "scan") else { return false }
            return type(of: parsed).accepts.contains(kind) && (!unique || parsed.keepsDistinct)
        }
        func pick(_ rule: String, _ distinct: String?, _ reason: String) -> Suggestion? {
            if fits(rule) { return Suggestion(rule: rule, reason: reason, personal: true) }
            if let distinct, fits(distinct) { return Suggestion(rule: distinct, reason: reason + "; unique, so a rule that keeps values distinct", personal: true) }
            return nil
        }
        // Keys stay as they are unless they are personal themselves: masking an id breaks nothing
        // but helps nobody, and references inherit from the referenced side anyway.
        if inReference && !(kind == .text) {
            return Suggestion(rule: "keep", reason: "a key or reference (\(column.type))", personal: false)
        }
        var nameSays: String?
        for entry in byName where entry.words.contains(name) || entry.words.contains(where: { w in !w.contains("_") && words.contains(w) }) {
            if let s = pick(entry.rule, entry.distinctRule, "the name says \(entry.what)") { return s }
            nameSays = nameSays ?? entry.what
        }
        let values = samples.filter { !$0.isEmpty }
        if kind == .text, !values.isEmpty {
            func share(_ test: (String) -> Bool) -> Double { Double(values.filter(test).count) / Double(values.count) }
            let checks: [(Double, String, String?, String)] = [
                (share { matches(email, $0) }, "{rule: email, length: 52}", "{rule: email, length: 52, case: keep}", "values look like email addresses"),
                (share { matches(iban, $0.uppercased()) }, "{rule: fake, kind: iban}", "hash", "values look like IBANs"),
                (share { v in
                    let d = v.compactMap(\.wholeNumberValue)
                    return (13...19).contains(d.count) && v.allSatisfy { $0.isNumber || $0 == " " || $0 == "-" } && luhn(d)
                }, "{rule: hash, pattern: digits}", nil, "values look like card numbers (Luhn)"),
                (share { matches(phone, $0) && $0.filter(\.isNumber).count >= 7 }, "{rule: hash, pattern: digits}", nil, "values look like phone numbers"),
                (share { matches(personName, $0) }, "{rule: fake, kind: full_name}", "hash", "values look like people's names"),
                (share { $0.count > 20 && (matches(emailInside, $0) || matches(phoneInside, $0)) }, "{rule: redact, email_length: 52}", nil, "free text quoting emails or phone numbers"),
            ]
            for (fraction, rule, distinct, reason) in checks where fraction >= 0.5 {
                if let s = pick(rule, distinct, "\(reason) (\(Int(fraction * 100))% of \(values.count) sampled)") { return s }
            }
        }
        let birth = words.contains { ["birth", "birthday", "birthdate", "dob", "born"].contains($0) }
        if (kind == .date || kind == .timestamp) && birth {
            return Suggestion(rule: "{rule: generalize, to: year}", reason: "a birth date", personal: true)
        }
        if kind == .text && birth {
            return Suggestion(rule: "hash", reason: "a birth date kept as text (store it as date to generalize it to its year)", personal: true)
        }
        // Not `keep` when the name or the sampled values say personal but no rule fits the
        // type (inet, jsonb, arrays…): null, or a constant where the column takes no NULL.
        let inside: [(String, NSRegularExpression)] = [("email addresses", emailInside), ("phone numbers", phoneInside), ("IP addresses", ipInside)]
        let seen = values.isEmpty || kind == .integer || kind == .decimal || kind == .date || kind == .timestamp || kind == .boolean || kind == .uuid ? nil
            : inside.first { what, pattern in Double(values.filter { matches(pattern, $0) }.count) / Double(values.count) >= 0.3 }.map(\.0)
        if let why = nameSays.map({ "the name says \($0)" }) ?? seen.map({ "sampled values hold \($0)" }) {
            if kind == .json {
                return Suggestion(rule: "{rule: json, other: null}", reason: "\(why): every value nulled, member names kept, until you name the paths to mask (paths: {$.email: email, …})", personal: true)
            }
            if let element = column.elementKind, element != .other {
                let rule = column.notNull ? "{rule: constant, value: \"\(placeholder(column.type))\"}" : "null"
                return Suggestion(rule: rule, reason: "\(why): \(column.notNull ? "one placeholder value" : "nulled") until you choose a rule for each element ({rule: elements, each: RULE})", personal: true)
            }
            let rule = column.notNull ? "{rule: constant, value: \"\(placeholder(column.type))\"}" : "null"
            return Suggestion(rule: rule, reason: "\(why), and no rule masks \(column.type) by part: \(column.notNull ? "one placeholder value" : "nulled") until you choose", personal: true)
        }
        return Suggestion(rule: "keep", reason: values.isEmpty && kind == .text ? "no sampled values; nothing personal in its name" : "nothing personal in its name or sampled values",
                          personal: false)
    }

    /// A rule as written in a policy (`keep`, `{rule: hash, pattern: digits}`) as Yams reads it.
    static func yamlValue(_ text: String) -> Any {
        guard text.hasPrefix("{") else { return text }
        var map: [String: Any] = [:]
        for pair in text.dropFirst().dropLast().split(separator: ",") {
            let parts = pair.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { map[parts[0]] = parts[1] }
        }
        return map
    }

    /// A starting policy: every column of every table with its rule and, as a comment, why.
    public static func policy(_ tables: [(table: String, columns: [(name: String, suggestion: Suggestion)])], header: String) -> String {
        var out = header.split(separator: "\n", omittingEmptySubsequences: false).map { "# " + $0 }.joined(separator: "\n")
        out += "\nstrict: true\ntables:\n"
        for (table, columns) in tables {
            out += "  \(table):\n"
            let width = columns.map { $0.name.count + $0.suggestion.rule.count + 2 }.max() ?? 0
            for (name, s) in columns {
                let entry = "\(yamlKey(name)): \(s.rule)"
                out += "    " + entry.padding(toLength: max(width, entry.count), withPad: " ", startingAt: 0) + "  # \(s.reason)\n"
            }
        }
        return out
    }

    static func yamlKey(_ name: String) -> String {
        name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"].contains(name.lowercased())
            ? name : "\"" + name.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
