import Foundation

/// `redact`: free text with every email address and phone number in it replaced by its
/// masked value (the `email` rule's, and `hash` with `pattern: digits`), so a quoted
/// address in a ticket still matches the masked address of its customer.
public struct Redact: MaskingRule {
    public static let name = "redact"
    public static let summary = "emails and phone numbers inside free text replaced by their masked values"
    public static let accepts: Set<ValueKind> = [.text]
    let email: Email
    let phone: Hash

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["email_length", "keep_domain"], parameters, path: path)
        var emailParameters = ["length": parameters["email_length"] ?? "16"]
        if let keep = parameters["keep_domain"] { emailParameters["keep_domain"] = keep }
        email = try Email(parameters: emailParameters, path: path)
        phone = try Hash(parameters: ["pattern": "digits"], path: path)
    }

    public var identity: String { "redact:\(email.identity):\(phone.identity)" }
    public var keepsDistinct: Bool { false }

    static let emails = try! NSRegularExpression(pattern: #"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"#)
    /// Seven or more digits, with spaces, dots, dashes, parentheses and a leading + between.
    static let phones = try! NSRegularExpression(pattern: #"\+?\(?\d[\d\s.\-()]{5,}\d"#)

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? {
        var text = replace(Self.emails, in: value) { email.apply($0, kind: .text, key: key) ?? $0 }
        text = replace(Self.phones, in: text) { match in
            match.filter(\.isNumber).count >= 7 ? Hash.permuteDigits(match, key: key, domain: phone.identity) : match
        }
        return text
    }

    private func replace(_ pattern: NSRegularExpression, in text: String, with transform: (String) -> String) -> String {
        let ns = text as NSString
        let matches = pattern.matches(in: text, range: NSRange(location: 0, length: ns.length))
        guard !matches.isEmpty else { return text }
        var out = ""
        var last = 0
        for m in matches {
            out += ns.substring(with: NSRange(location: last, length: m.range.location - last))
            out += transform(ns.substring(with: m.range))
            last = m.range.location + m.range.length
        }
        return out + ns.substring(from: last)
    }
}
