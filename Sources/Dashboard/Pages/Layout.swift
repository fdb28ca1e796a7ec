import Foundation

/// What every page needs to know about the request: who is signed in (and the CSRF value
/// of their session), whether actions exist at all, the time, and a message to show.
public struct ViewContext: Sendable {
    public var actor: String?
    public var csrf: String?
    public var actionsEnabled: Bool
    public var now: Date
    public var flash: String?

    public init(actor: String?, csrf: String?, actionsEnabled: Bool, now: Date, flash: String? = nil) {
        self.actor = actor
        self.csrf = csrf
        self.actionsEnabled = actionsEnabled
        self.now = now
        self.flash = flash
    }
}

/// One rendered page: its title and the HTML of its main element.
struct Page {
    var title: String
    var body: String
    /// The nav entry to highlight.
    var section: String
}

enum Layout {
    static let sections: [(String, String)] = [
        ("overview", "/"), ("jobs", "/jobs"), ("scheduled", "/scheduled"), ("dead", "/dead"),
        ("schedules", "/schedules"), ("workers", "/workers"), ("artefacts", "/artefacts"), ("audit", "/audit"),
    ]

    /// The whole document; `fragment` gives only the main element's content (the live
    /// updates replace it in place).
    static func render(_ page: Page, _ context: ViewContext, fragment: Bool) -> String {
        let flash = context.flash.map { "<p class=\"flash\" role=\"status\">\(HTML.text($0))</p>" } ?? ""
        if fragment { return flash + page.body }
        let nav = sections.map { name, path in
            "<a href=\"\(path)\"\(name == page.section ? " aria-current=\"page\"" : "")>\(name)</a>"
        }.joined()
        let who: String
        if !context.actionsEnabled {
            who = "<span class=\"muted\" title=\"started without DBQ_DASHBOARD_TOKEN\">read-only</span>"
        } else if let actor = context.actor {
            who = "<span>signed in as <b>\(HTML.text(actor))</b></span>" + form("/logout", context, fields: [:], button: "sign out", style: "link")
        } else {
            who = "<a href=\"/login\">sign in to act</a>"
        }
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.text(page.title)) · dbq</title>
            <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
            <link rel="stylesheet" href="/assets/dashboard.css">
            <script src="/assets/dashboard.js" defer></script>
            </head>
            <body>
            <header><strong>dbq</strong><nav>\(nav)</nav><div class="who">\(who)</div></header>
            <main data-live>\(flash)\(page.body)</main>
            <footer>Live: refreshed every 3 s from Redis · <span id="updated">\(HTML.text(HTML.shortTime(context.now)))</span></footer>
            </body>
            </html>
            """
    }

    /// A POST form with the session's CSRF value: one button.
    static func form(_ action: String, _ context: ViewContext, fields: [String: String], button: String, style: String = "",
                     confirm: String? = nil) -> String {
        var inputs = "<input type=\"hidden\" name=\"csrf\" value=\"\(HTML.attribute(context.csrf ?? ""))\">"
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            inputs += "<input type=\"hidden\" name=\"\(HTML.attribute(name))\" value=\"\(HTML.attribute(value))\">"
        }
        let confirmAttribute = confirm.map { " data-confirm=\"\(HTML.attribute($0))\"" } ?? ""
        return "<form method=\"post\" action=\"\(HTML.attribute(action))\" class=\"inline\"\(confirmAttribute)>\(inputs)<button type=\"submit\" class=\"\(style)\">\(HTML.text(button))</button></form>"
    }

    static func table(_ headers: [String], _ rows: [[String]], empty: String) -> String {
        guard !rows.isEmpty else { return "<p class=\"muted\">\(HTML.text(empty))</p>" }
        let head = headers.map { "<th>\(HTML.text($0))</th>" }.joined()
        let body = rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>" }.joined(separator: "\n")
        return "<table><thead><tr>\(head)</tr></thead><tbody>\n\(body)\n</tbody></table>"
    }

    static func stateBadge(_ state: String) -> String {
        "<span class=\"state state-\(HTML.attribute(state))\">\(HTML.text(state))</span>"
    }

    static func jobLink(_ id: String, queue: String) -> String {
        "<a class=\"mono\" href=\"/jobs/\(HTML.query(queue))/\(HTML.query(id))\">\(HTML.text(String(id.prefix(13))))…</a>"
    }
}
