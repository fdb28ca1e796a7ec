import DBQSupport
import Foundation

/// HTML built from strings with every piece of data escaped where it goes in: `text`
/// for element content, `attribute` for quoted attribute values. Pages build strings;
/// nothing a job, a payload or an error holds is ever inserted unescaped.
enum HTML {
    static func text(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func attribute(_ s: String) -> String { text(s) }

    /// A query string value (the part after `=`), percent-encoded.
    static func query(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// What a page may show of text that came from a job: URLs with their passwords
    /// masked, so a connection error never shows a secret.
    static func safe(_ s: String) -> String {
        var out = s
        // Every `scheme://user:password@` in the text, not only a text that is one URL.
        var searchStart = out.startIndex
        while let range = out.range(of: "://", range: searchStart..<out.endIndex) {
            var start = range.lowerBound
            while start > out.startIndex, out[out.index(before: start)].isLetter || "+.-".contains(out[out.index(before: start)]) {
                start = out.index(before: start)
            }
            var end = range.upperBound
            while end < out.endIndex, !" \t\n\"'<>".contains(out[end]) { end = out.index(after: end) }
            let masked = Redaction.url(String(out[start..<end]))
            out.replaceSubrange(start..<end, with: masked)
            searchStart = out.index(start, offsetBy: masked.count, limitedBy: out.endIndex) ?? out.endIndex
        }
        return out
    }

    /// Seconds as "3 s", "4 min", "2 h", "5 d".
    static func age(_ seconds: Double) -> String {
        if seconds < 90 { return "\(Int(seconds.rounded())) s" }
        if seconds < 5400 { return "\(Int((seconds / 60).rounded())) min" }
        if seconds < 172_800 { return "\(Int((seconds / 3600).rounded())) h" }
        return "\(Int((seconds / 86400).rounded())) d"
    }

    static func time(_ date: Date?) -> String {
        guard let date else { return "–" }
        return "<time datetime=\"\(iso(date))\" title=\"\(iso(date))\">\(text(shortTime(date)))</time>"
    }

    static func iso(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    static func shortTime(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return f.string(from: date)
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }
}
