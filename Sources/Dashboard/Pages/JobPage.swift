import Foundation
import Queue
import RedisQueue

/// One job: state, attempts, payload, error, result, progress and its timeline, with the
/// actions its state allows.
enum JobPage {
    static func render(_ job: JobRecord, _ context: ViewContext) -> Page {
        var body = "<h1>Job <span class=\"mono\">\(HTML.text(job.id))</span></h1>"
        body += "<p>\(Layout.stateBadge(job.state)) \(HTML.text(job.kind ?? "?")) on <a href=\"/jobs?queue=\(HTML.query(job.queue))\">\(HTML.text(job.queue))</a>"
        body += " · attempt \(job.attempt) of \(job.maxAttempts.map(String.init) ?? "?")"
        if job.cancelRequested { body += " · <b>cancel requested</b>" }
        body += "</p>"
        if context.actionsEnabled {
            var buttons = ""
            if ["dead", "cancelled", "succeeded"].contains(job.state) {
                buttons += Layout.form("/actions/retry", context, fields: ["queue": job.queue, "id": job.id], button: "retry")
            }
            if ["pending", "scheduled", "running"].contains(job.state) && !job.cancelRequested {
                buttons += Layout.form("/actions/cancel", context, fields: ["queue": job.queue, "id": job.id], button: "cancel", style: "danger",
                                       confirm: "Cancel this job?")
            }
            if !buttons.isEmpty { body += "<p class=\"actions\">\(buttons)</p>" }
        }
        if let progress = job.progress {
            body += "<section><h2>Progress</h2><p>\(JobsPage.progress(job))"
            if let bytes = progress.bytes { body += " · \(HTML.bytes(bytes))" }
            if let rows = progress.rows { body += " · \(rows) rows" }
            body += "</p></section>"
        }
        if let error = job.error { body += "<section><h2>Error</h2><pre class=\"error\">\(HTML.text(HTML.safe(error)))</pre></section>" }
        let timeline: [(String, Date?)] = [("enqueued", job.enqueuedAt), ("run at", job.runAt), ("started", job.startedAt),
                                           ("lease until", job.state == "running" ? job.leaseUntil : nil), ("finished", job.finishedAt)]
        body += "<section><h2>Timeline</h2><dl class=\"timeline\">"
        for (label, date) in timeline where date != nil { body += "<dt>\(label)</dt><dd>\(HTML.time(date))</dd>" }
        if let worker = job.worker { body += "<dt>worker</dt><dd class=\"mono\">\(HTML.text(worker))</dd>" }
        if let by = job.enqueuedBy { body += "<dt>enqueued by</dt><dd>\(HTML.text(by))</dd>" }
        if let unique = job.uniqueKey { body += "<dt>unique key</dt><dd class=\"mono\">\(HTML.text(unique))</dd>" }
        body += "</dl></section>"
        body += "<section><h2>Payload</h2><pre>\(HTML.text(HTML.safe(pretty(job.payload))))</pre>"
        if let v = job.payloadVersion { body += "<p class=\"muted\">payload version \(v)</p>" }
        body += "</section>"
        if let result = job.result { body += "<section><h2>Result</h2><pre>\(HTML.text(HTML.safe(pretty(result))))</pre></section>" }
        return Page(title: "Job \(job.id.prefix(13))", body: body, section: "jobs")
    }

    static func pretty(_ value: JSONValue?) -> String {
        guard let value else { return "–" }
        if case .object(let fields) = value, fields.isEmpty { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
    }
}
