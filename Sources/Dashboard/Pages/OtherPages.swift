import Foundation
import Queue
import RedisQueue

/// Schedule entries: next fire, last fire and outcome, time since the last success, alert.
enum SchedulesPage {
    static func render(_ report: ScheduleReport?, _ context: ViewContext) -> Page {
        guard let report else {
            return Page(title: "Schedules", body: "<h1>Schedules</h1><p class=\"muted\">No schedule file: start the dashboard with --schedule FILE (or schedule: in dbq.yaml).</p>", section: "schedules")
        }
        var body = "<h1>Schedules</h1><p>beat leader: <b>\(HTML.text(report.leader ?? "none (no beat is running)"))</b></p>"
        let rows = report.entries.map { e -> [String] in
            [(e.alert ? "<span class=\"state state-dead\">ALERT</span> " : "") + HTML.text(e.name), "<span class=\"mono\">\(HTML.text(e.cron))</span> \(HTML.text(e.timezone))",
             HTML.text(e.queue), HTML.time(e.nextFire), HTML.time(e.lastFire),
             e.lastJobID.map { Layout.jobLink($0, queue: e.queue) + " " + Layout.stateBadge(e.lastJobState ?? "?") } ?? "–",
             e.secondsSinceSuccess.map { HTML.age($0) + " ago" } ?? "never", e.alertAfterSeconds.map { HTML.age($0) } ?? "–"]
        }
        body += Layout.table(["entry", "cron", "queue", "next fire", "last fire", "last job", "last success", "alert after"], rows, empty: "The schedule has no entries.")
        return Page(title: "Schedules", body: body, section: "schedules")
    }
}

/// Workers seen in the last 30 s.
enum WorkersPage {
    static func render(_ workers: [WorkerPresence], _ context: ViewContext) -> Page {
        let rows = workers.map { w -> [String] in
            ["<span class=\"mono\">\(HTML.text(w.id))</span>", HTML.text(w.host), String(w.pid), HTML.text(w.queues.joined(separator: ", ")),
             "\(w.running) / \(w.concurrency)", HTML.time(w.startedAt), HTML.age(max(0, context.now.timeIntervalSince(w.seenAt))) + " ago"]
        }
        let body = "<h1>Workers</h1>" + Layout.table(["worker", "host", "pid", "queues", "running / slots", "started", "seen"], rows,
                                                     empty: "No worker has been seen in the last 30 s.")
        return Page(title: "Workers", body: body, section: "workers")
    }
}

/// Backups, exports and snapshots from their manifests, with verification.
enum ArtefactsPage {
    static func render(_ rows: [ArtefactRow], error: String?, _ context: ViewContext) -> Page {
        var body = "<h1>Backups, exports and snapshots</h1>"
        if let error { body += "<p class=\"flash error\">\(HTML.text(HTML.safe(error)))</p>" }
        let cells = rows.sorted { $0.finishedAt > $1.finishedAt }.map { r -> [String] in
            [HTML.text(r.family), "<span class=\"mono\">\(HTML.text(r.id))</span>", HTML.text(r.database), HTML.text(r.storage), HTML.time(r.finishedAt),
             HTML.bytes(r.bytes), r.verification.map { Layout.stateBadge($0 == "passed" ? "succeeded" : "dead").replacingOccurrences(of: $0 == "passed" ? ">succeeded<" : ">dead<", with: ">\(HTML.text($0))<") } ?? (r.family == "backup" ? "not yet" : "–"),
             HTML.text(HTML.safe(r.detail))]
        }
        body += Layout.table(["kind", "id", "database", "storage", "finished", "size", "verified", "detail"], cells,
                             empty: "No artefact with a manifest in the configured storages.")
        return Page(title: "Artefacts", body: body, section: "artefacts")
    }
}

/// What was done from this dashboard, by whom.
enum AuditPage {
    static func render(_ entries: [AuditEntry], signIns: [AuditEntry] = [], _ context: ViewContext) -> Page {
        let rows = entries.map { e -> [String] in
            [HTML.time(e.at), HTML.text(e.actor), HTML.text(e.address), HTML.text(e.action), "<span class=\"mono\">\(HTML.text(e.target))</span>", HTML.text(e.outcome)]
        }
        var body = "<h1>Actions</h1>" + Layout.table(["when", "who", "from", "action", "target", "outcome"], rows, empty: "No action has been taken from the dashboard.")
        // Sign-ins on a list of their own: failures cannot push actions out of the log above.
        let signInRows = signIns.map { e in [HTML.time(e.at), HTML.text(e.actor), HTML.text(e.address), HTML.text(e.outcome)] }
        body += "<h2>Sign-ins</h2>" + Layout.table(["when", "name", "from", "outcome"], signInRows, empty: "No sign-in yet.")
        return Page(title: "Actions", body: body, section: "audit")
    }
}

/// Sign in with a name and the operator token.
enum LoginPage {
    static func render(_ context: ViewContext, error: String? = nil) -> Page {
        var body = "<h1>Sign in</h1>"
        if !context.actionsEnabled {
            body += "<p>This dashboard is read-only: it was started without DBQ_DASHBOARD_TOKEN.</p>"
            return Page(title: "Sign in", body: body, section: "")
        }
        if let error { body += "<p class=\"flash error\">\(HTML.text(error))</p>" }
        body += """
            <form method="post" action="/login" class="login">
            <label>your name <input name="name" autocomplete="username" required maxlength="64" pattern="[A-Za-z0-9._@\\-]+"></label>
            <label>operator token <input name="token" type="password" autocomplete="current-password" required></label>
            <button type="submit">sign in</button>
            </form>
            <p class="muted">Reading needs no sign-in. Retry, cancel and purge do; each is logged with your name.</p>
            """
        return Page(title: "Sign in", body: body, section: "")
    }
}

/// A refusal or a missing thing, as a page.
enum MessagePage {
    static func render(_ title: String, _ message: String, _ context: ViewContext) -> Page {
        Page(title: title, body: "<h1>\(HTML.text(title))</h1><p class=\"flash error\">\(HTML.text(message))</p>", section: "")
    }
}
