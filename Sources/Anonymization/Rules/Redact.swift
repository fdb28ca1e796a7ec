import Foundation

/// `redact`: free text with every email address and phone number in it replaced by its
/// masked value (the `email` rule's, and `hash` with `pattern: digits`), so a quoted
/// address in a ticket still matches the masked address of its customer. With
/// `values: [public.customers.name, …]`, every original value of those columns found in
/// the text as whole words is replaced by the value the policy gives it there (the export
/// reads the columns' distinct values in its snapshot, at most `RedactValues.limit`).
public struct Redact: MaskingRule {
    public static let name = "redact"
    public static let summary = "emails and phone numbers inside free text replaced by their masked values"
    public static let accepts: Set<ValueKind> = [.text]
    let email: Email
    let phone: Hash
    /// Columns (schema.table.column) whose values are found in the text.
    public let valueColumns: [String]
    /// Their originals and masked values, filled by the export before it reads a row.
    public private(set) var values: RedactValues?

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["email_length", "keep_domain", "values"], parameters, path: path)
        valueColumns = (parameters["values"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let bad = valueColumns.first(where: { $0.split(separator: ".").count != 3 }) {
            throw AnonymizationError("\(path).values: '\(bad)' must be schema.table.column")
        }
        var emailParameters = ["length": parameters["email_length"] ?? "16"]
        if let keep = parameters["keep_domain"] { emailParameters["keep_domain"] = keep }
        email = try Email(parameters: emailParameters, path: path)
        phone = try Hash(parameters: ["pattern": "digits"], path: path)
    }

    public var identity: String {
        "redact:\(email.identity):\(phone.identity)" + (valueColumns.isEmpty ? "" : ":values=" + valueColumns.joined(separator: ","))
    }

    /// This rule with the values it finds.
    public func with(_ values: RedactValues) -> Redact {
        var copy = self
        copy.values = values
        return copy
    }
    public var keepsDistinct: Bool { false }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        try prepared(kind: kind, key: key).apply(value)
    }

    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        RedactText(email: email.hashing(key),
                   phone: DigitPermutation(key: key, domain: phone.identity), values: values)
    }
}

/// `redact`, bound to a key: the policy's own values first (the most specific; what they
/// replaced is not scanned again), then emails, then phone numbers.
final class RedactText: PreparedRule {
    var addsNoControl: Bool { true }
    let email: EmailHash
    let phone: DigitPermutation
    let values: RedactValues?

    init(email: EmailHash, phone: DigitPermutation, values: RedactValues?) {
        self.email = email
        self.phone = phone
        self.values = values
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        var batch = PermutationBatch(deferring: false)
        return mask(value, into: &out, batch: &batch)
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) -> Bool {
        guard let values else {
            // Most text quotes nothing: no '@' and no run of seven digits, nothing to build.
            if TextScanner.hasAt(value) || TextScanner.hasDigits(value, atLeast: 7) {
                scan(value, into: &out, batch: &batch)
            } else {
                out.append(contentsOf: value)
            }
            return true
        }
        for (piece, replacement) in values.split(Array(value)) {
            if let replacement { out += replacement.utf8; continue }
            piece.withUnsafeBytes { scan($0, into: &out, batch: &batch) }
        }
        return true
    }

    /// Emails replaced as the text is appended, then phone numbers in the appended text
    /// (masked emails included, as always) permuted in place: a number's mask has its
    /// length, so no second buffer is needed.
    private func scan(_ text: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) {
        let from = out.count
        if TextScanner.hasAt(text) {
            TextScanner.appendReplacingEmails(text, into: &out) { match, o in _ = email.mask(match, into: &o) }
        } else {
            out.append(contentsOf: text)
        }
        out.withUnsafeMutableBytes { all in
            let appended = UnsafeMutableRawBufferPointer(rebasing: all[from...])
            TextScanner.forEachPhone(UnsafeRawBufferPointer(appended)) { match in
                let number = UnsafeMutableRawBufferPointer(rebasing: appended[match])
                if TextScanner.hasDigits(UnsafeRawBufferPointer(number), atLeast: 7) {
                    phone.permute(number, at: from + match.lowerBound, batch: &batch)
                }
            }
        }
    }
}

/// Original values and what they are masked to, found in text as whole words (a word is a
/// run of letters, digits and non-ASCII bytes): the longest original starting at a word
/// wins. Immutable once built; shared by the threads that mask.
public final class RedactValues: Sendable {
    /// The most distinct values one export reads for `redact`: memory stays bounded.
    public static let limit = 50_000
    /// What an original stands replaced by when its own column's rule gives no value of
    /// its own (NULL, or a value the server computes).
    public static let marker = "[redacted]"
    let masked: [String: String]
    let firstWords: Set<String>
    let maxWords: Int

    /// `pairs`: original → masked; originals shorter than 3 bytes are ignored (they would
    /// match ordinary words). An original is found by its words, from the first to the
    /// last: spaces, quotes or a backslash around them (` Anna `, `\N Anna`) are not what
    /// identifies a person, and an original kept whole with them would never match.
    public init(_ pairs: [String: String]) {
        var masked: [String: String] = [:], firsts: Set<String> = [], most = 1
        for (original, value) in pairs.sorted(by: { $0.key < $1.key }) where original.utf8.count >= 3 && original != value {
            let bytes = Array(original.utf8)
            let words = Self.words(bytes)
            guard let first = words.first, let last = words.last else { continue }
            let core = String(decoding: bytes[first.lowerBound..<last.upperBound], as: UTF8.self)
            guard core.utf8.count >= 3, masked[core] == nil else { continue }
            masked[core] = value
            firsts.insert(String(decoding: bytes[first], as: UTF8.self))
            most = max(most, words.count)
        }
        self.masked = masked
        firstWords = firsts
        maxWords = most
    }

    public var count: Int { masked.count }

    static func isWord(_ b: UInt8) -> Bool { TextScanner.isAlnum(b) || b >= 0x80 }

    static func words(_ bytes: [UInt8]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < bytes.count {
            guard isWord(bytes[i]) else { i += 1; continue }
            let start = i
            while i < bytes.count && isWord(bytes[i]) { i += 1 }
            out.append(start..<i)
        }
        return out
    }

    /// The text cut into pieces: runs of it as they are (nil) and originals found (with
    /// their masked value), in order.
    func split(_ text: [UInt8]) -> [(ArraySlice<UInt8>, String?)] {
        let words = Self.words(text)
        var out: [(ArraySlice<UInt8>, String?)] = []
        var copied = 0
        var w = 0
        while w < words.count {
            let first = String(decoding: text[words[w]], as: UTF8.self)
            guard firstWords.contains(first) else { w += 1; continue }
            var hit: (Int, String)?
            for k in stride(from: min(maxWords, words.count - w), through: 1, by: -1) {
                let candidate = String(decoding: text[words[w].lowerBound..<words[w + k - 1].upperBound], as: UTF8.self)
                if let value = masked[candidate] { hit = (k, value); break }
            }
            guard let (k, value) = hit else { w += 1; continue }
            if copied < words[w].lowerBound { out.append((text[copied..<words[w].lowerBound], nil)) }
            out.append((text[words[w].lowerBound..<words[w + k - 1].upperBound], value))
            copied = words[w + k - 1].upperBound
            w += k
        }
        if copied < text.count || out.isEmpty { out.append((text[copied...], nil)) }
        return out
    }
}

/// Finds email addresses and phone numbers in UTF-8 text, byte by byte (what the
/// patterns `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}` and
/// `\+?\(?\d[\d\s.()-]{5,}\d` match, leftmost and longest, ASCII digits and spaces),
/// without a regular expression engine: `redact` runs on every row of free text.
enum TextScanner {
    // Range tests by wrapping subtraction: one compare each, no table shared by threads.
    @inline(__always) static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) &- 0x61 < 26 }
    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }
    @inline(__always) static func isAlnum(_ b: UInt8) -> Bool { isLetter(b) || isDigit(b) }
    @inline(__always) static func isLocal(_ b: UInt8) -> Bool { isAlnum(b) || b == 0x2E || b == 0x5F || b == 0x25 || b == 0x2B || b == 0x2D }
    @inline(__always) static func isDomain(_ b: UInt8) -> Bool { isAlnum(b) || b == 0x2E || b == 0x2D }
    @inline(__always) static func isPhone(_ b: UInt8) -> Bool {
        isDigit(b) || b == 0x20 || b &- 0x09 < 5 || b == 0x2E || b == 0x2D || b == 0x28 || b == 0x29
    }
    /// 1 at every byte `isPhone` accepts, else 0 (written once, never freed: read by every
    /// thread that masks, with no reference to count).
    nonisolated(unsafe) static let phoneBytes: UnsafePointer<UInt8> = {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for b in 0..<256 { table[b] = isPhone(UInt8(b)) ? 1 : 0 }
        return UnsafePointer(table)
    }()
    /// A byte a phone number can start at: a digit, '+' or '('.
    @inline(__always) static func isPhoneStart(_ b: UInt8) -> Bool { isDigit(b) || b == 0x2B || b == 0x28 }

    /// True when `bytes` holds an '@'.
    @inline(__always) static func hasAt(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        return memchr(base, 0x40, bytes.count) != nil
    }

    static func hasDigits(_ bytes: UnsafeRawBufferPointer, atLeast n: Int) -> Bool {
        var count = 0
        for b in bytes where isDigit(b) {
            count += 1
            if count >= n { return true }
        }
        return false
    }

    static func replaceEmails(_ text: [UInt8], _ transform: (String) -> String) -> [UInt8] {
        var out: [UInt8] = []
        text.withUnsafeBytes { appendReplacingEmails($0, into: &out) { match, o in o += transform(String(decoding: match, as: UTF8.self)).utf8 } }
        return out
    }

    static func replacePhones(_ text: [UInt8], _ transform: (String) -> String) -> [UInt8] {
        var out: [UInt8] = []
        text.withUnsafeBytes { appendReplacingPhones($0, into: &out) { match, o in o += transform(String(decoding: match, as: UTF8.self)).utf8 } }
        return out
    }

    /// Appends `text` to `out` with every email address replaced by what `replace` appends.
    static func appendReplacingEmails(_ text: UnsafeRawBufferPointer, into out: inout [UInt8],
                                      _ replace: (UnsafeRawBufferPointer, inout [UInt8]) -> Void) {
        var copied = 0, floor = 0, i = 0
        let n = text.count
        while i < n {
            guard let at = memchr(text.baseAddress! + i, 0x40, n - i) else { break }
            i = UnsafeRawPointer(at) - text.baseAddress!
            var start = i
            while start > floor && isLocal(text[start - 1]) { start -= 1 }
            var runEnd = i + 1
            while runEnd < n && isDomain(text[runEnd]) { runEnd += 1 }
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
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[copied..<start]))
            replace(UnsafeRawBufferPointer(rebasing: text[start..<end]), &out)
            copied = end
            floor = end
            i = end
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[copied...]))
    }

    /// Appends `text` to `out` with every phone number replaced by what `replace` appends.
    static func appendReplacingPhones(_ text: UnsafeRawBufferPointer, into out: inout [UInt8],
                                      _ replace: (UnsafeRawBufferPointer, inout [UInt8]) -> Void) {
        var copied = 0
        forEachPhone(text) { match in
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[copied..<match.lowerBound]))
            replace(UnsafeRawBufferPointer(rebasing: text[match]), &out)
            copied = match.upperBound
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[copied...]))
    }

    /// The phone numbers in `text`, in order: what `\+?\(?\d[\d\s.()-]{5,}\d` matches,
    /// leftmost and longest.
    ///
    /// A number is an optional '+' and a run of at least seven phone characters (digits,
    /// spaces, `.`, `-`, parentheses), so only such runs are looked into: the text is read
    /// once, counting the current run without a branch per byte, and the matching runs
    /// inside each long run alone. Runs are separated by bytes no number holds, so this
    /// finds what matching the whole text would.
    @inline(__always)
    static func forEachPhone(_ text: UnsafeRawBufferPointer, _ body: (Range<Int>) -> Void) {
        let n = text.count
        let phone = phoneBytes
        var k = 0, run = 0
        while k < n {
            // 1 for a phone character, else 0: the run grows or restarts without a branch.
            run = (run &+ 1) &* Int(phone[Int(text[k])])
            k += 1
            guard run >= 7 else { continue }
            let start = k - 7
            var end = k
            while end < n && isPhone(text[end]) { end += 1 }
            let from = start > 0 && text[start - 1] == 0x2B ? start - 1 : start
            matchPhones(text, in: from..<end, body)
            k = end
            run = 0
        }
    }

    /// The leftmost-longest matching inside one run (and the '+' before it).
    private static func matchPhones(_ text: UnsafeRawBufferPointer, in range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var i = range.lowerBound
        let n = range.upperBound
        while i < n {
            guard isPhoneStart(text[i]) else { i += 1; continue }
            var j = i
            if text[j] == 0x2B { j += 1 }
            if j < n && text[j] == 0x28 { j += 1 }
            guard j < n, isDigit(text[j]) else { i += 1; continue }
            var runEnd = j + 1
            while runEnd < n && isPhone(text[runEnd]) { runEnd += 1 }
            var last = runEnd - 1
            while last >= j + 6 && !isDigit(text[last]) { last -= 1 }
            guard last >= j + 6 else { i = max(i + 1, runEnd); continue }
            body(i..<(last + 1))
            i = last + 1
        }
    }
}
