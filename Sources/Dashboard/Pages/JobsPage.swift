import Foundation
import Queue
import RedisQueue

/// Jobs filtered by queue, state and kind; the dead and scheduled pages are this list
/// with their state fixed and their actions beside it.
enum JobsPage {
    struct Filter: Equatable {
        var queue: String?
        var state: JobState?
        var kind: String?
    }

    static func render(_ jobs: [JobRecord], filter: Filter, queues: [String], title: String, section: String, _ context: ViewContext,
                       actions: String = "") -> Page {
        var body = "<h1>\(HTML.text(title))</h1>"
        if section == "jobs" { body += filterForm(filter, queues: queues) }
        body += actions
        let rows = jobs.map { job -> [String] in
            [Layout.jobLink(job.id, queue: job.queue), HTML.text(job.queue), HTML.text(job.kind ?? "?"), Layout.stateBadge(job.state),
             "\(job.attempt)/\(job.maxAttempts.map(String.init) ?? "?")", HTML.time(job.enqueuedAt),
             HTML.time(job.finishedAt ?? job.startedAt ?? job.runAt), progress(job),
             HTML.text(String(HTML.safe(job.error ?? "").prefix(120)))]
        }
        body += Layout.table(["id", "queue", "kind", "state", "attempt", "enqueued", "started / finished / due", "progress", "error"],
                             rows, empty: "No job matches.")
        return Page(title: title, body: body, section: section)
    }

    static func filterForm(_ filter: Filter, queues: [String]) -> String {
        func option(_ value: String, _ selected: Bool) -> String {
            "<option value=\"\(HTML.attribute(value))\"\(selected ? " selected" : "")>\(HTML.text(value.isEmpty ? "any" : value))</option>"
        }
        let queueOptions = ([""] + queues).map { option($0, ($0.isEmpty ? nil : $0) == filter.queue) }.joined()
        let stateOptions = ([""] + JobState.allCases.map(\.rawValue)).map { option($0, ($0.isEmpty ? nil : $0) == filter.state?.rawValue) }.joined()
        return """
            <form method="get" action="/jobs" class="filters">
            <label>queue <select name="queue">\(queueOptions)</select></label>
            <label>state <select name="state">\(stateOptions)</select></label>
            <label>kind <input name="kind" value="\(HTML.attribute(filter.kind ?? ""))" placeholder="any" size="12"></label>
            <button type="submit">filter</button>
            </form>
            """
    }

    static func progress(_ job: JobRecord) -> String {
        guard let p = job.progress else { return "" }
        var parts: [String] = []
        if let f = p.fraction { parts.append("<progress max=\"1\" value=\"\(f)\">\(Int(f * 100)) %</progress>") }
        if let message = p.message { parts.append(HTML.text(String(message.prefix(60)))) }
        return parts.joined(separator: " ")
    }
}

/// Dead jobs with retry and purge, per queue.
enum DeadPage {
    static func render(_ jobs: [JobRecord], queues: [QueueStats], _ context: ViewContext) -> Page {
        var actions = ""
        if context.actionsEnabled {
            for q in queues where q.dead > 0 {
                actions += "<p class=\"actions\">\(HTML.text(q.queue)): \(q.dead) dead "
                    + Layout.form("/actions/retry-all", context, fields: ["queue": q.queue], button: "retry all", confirm: "Retry all \(q.dead) dead jobs of \(q.queue)?")
                    + Layout.form("/actions/purge", context, fields: ["queue": q.queue, "state": "dead"], button: "purge", style: "danger",
                                  confirm: "Delete all \(q.dead) dead jobs of \(q.queue)? This cannot be undone.")
                    + "</p>"
            }
        }
        return JobsPage.render(jobs, filter: .init(state: .dead), queues: [], title: "Dead jobs", section: "dead", context, actions: actions)
    }
}
