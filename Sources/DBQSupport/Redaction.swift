/// Hides secrets before anything is logged, printed or put in an error.
public enum Redaction {
    /// What stands in place of a secret.
    public static let mask = "***"

    /// `url` with the password of its user-info replaced by the mask:
    /// `redis://:hunter2@host:6379` → `redis://:***@host:6379`. Strings that are not
    /// URLs come back unchanged.
    public static func url(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let afterScheme = url[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return url }
        let userInfo = authority[..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        var result = String(url[..<schemeEnd.upperBound])
        result += userInfo[...colon]
        result += mask
        result += afterScheme[at...]
        return result
    }

    /// `text` with every occurrence of each secret replaced by the mask.
    public static func scrub(_ text: String, secrets: [String]) -> String {
        var text = text
        for secret in secrets where !secret.isEmpty {
            text = text.replacingOccurrences(of: secret, with: mask)
        }
        return text
    }
}

import Foundation
