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

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? {
        let bytes = Array(value.utf8)
        // Most text quotes nothing: no '@' and no run of seven digits, nothing to build.
        guard bytes.contains(0x40) || TextScanner.hasDigits(bytes, atLeast: 7) else { return value }
        var text = TextScanner.replaceEmails(bytes) { email.apply($0, kind: .text, key: key) ?? $0 }
        text = TextScanner.replacePhones(text) { match in
            match.filter(\.isNumber).count >= 7 ? Hash.permuteDigits(match, key: key, domain: phone.identity) : match
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Finds email addresses and phone numbers in UTF-8 text, byte by byte (what the
/// patterns `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}` and
/// `\+?\(?\d[\d\s.()-]{5,}\d` match, leftmost and longest, ASCII digits and spaces),
/// without a regular expression engine: `redact` runs on every row of free text.
enum TextScanner {
    static func isLocal(_ b: UInt8) -> Bool { isAlnum(b) || b == 0x2E || b == 0x5F || b == 0x25 || b == 0x2B || b == 0x2D }
    static func isDomain(_ b: UInt8) -> Bool { isAlnum(b) || b == 0x2E || b == 0x2D }
    static func isLetter(_ b: UInt8) -> Bool { (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) }
    static func isDigit(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) }
    static func isAlnum(_ b: UInt8) -> Bool { isLetter(b) || isDigit(b) }
    static func isPhone(_ b: UInt8) -> Bool {
        isDigit(b) || b == 0x20 || (0x09...0x0D).contains(b) || b == 0x2E || b == 0x2D || b == 0x28 || b == 0x29
    }

    static func hasDigits(_ bytes: [UInt8], atLeast n: Int) -> Bool {
        var count = 0
        for b in bytes where isDigit(b) {
            count += 1
            if count >= n { return true }
        }
        return false
    }

    static func replaceEmails(_ text: [UInt8], _ transform: (String) -> String) -> [UInt8] {
        var out: [UInt8] = []
        var copied = 0, floor = 0, i = 0
        while i < text.count {
            guard text[i] == 0x40 else { i += 1; continue }
            var start = i
            while start > floor && isLocal(text[start - 1]) { start -= 1 }
            var runEnd = i + 1
            while runEnd < text.count && isDomain(text[runEnd]) { runEnd += 1 }
            // The longest end: the last '.' (after at least one domain character) followed by
            // two or more letters.
            var end: Int?
            var d = runEnd - 1
            while d >= i + 2 {
                if text[d] == 0x2E {
                    var letters = d + 1
                    while letters < runEnd && isLetter(text[letters]) { letters += 1 }
                    if letters - d - 1 >= 2 { end = letters; break }
                }
                d -= 1
            }
            guard start < i, let end else { i += 1; continue }
            out += text[copied..<start]
            out += transform(String(decoding: text[start..<end], as: UTF8.self)).utf8
            copied = end
            floor = end
            i = end
        }
        if copied == 0 { return text }
        out += text[copied...]
        return out
    }

    static func replacePhones(_ text: [UInt8], _ transform: (String) -> String) -> [UInt8] {
        var out: [UInt8] = []
        var copied = 0, i = 0
        while i < text.count {
            var j = i
            if text[j] == 0x2B { j += 1 }
            if j < text.count && text[j] == 0x28 { j += 1 }
            guard j < text.count, isDigit(text[j]) else { i += 1; continue }
            var runEnd = j + 1
            while runEnd < text.count && isPhone(text[runEnd]) { runEnd += 1 }
            var last = runEnd - 1
            while last >= j + 6 && !isDigit(text[last]) { last -= 1 }
            guard last >= j + 6 else { i = max(i + 1, runEnd); continue }
            out += text[copied..<i]
            out += transform(String(decoding: text[i...last], as: UTF8.self)).utf8
            copied = last + 1
            i = last + 1
        }
        if copied == 0 { return text }
        out += text[copied...]
        return out
    }
}
