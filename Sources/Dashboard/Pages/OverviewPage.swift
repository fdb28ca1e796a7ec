import Foundation
import Queue
import RedisQueue

/// Queues with their depth by state and their throughput over the last hour, workers,
/// the beat leader and schedule alerts, and the newest backup of each database.
enum OverviewPage {
    struct Input {
        var queues: [(QueueStats, [Int])]
        var workers: [WorkerPresence]
        var schedules: ScheduleReport?
        var artefacts: [ArtefactRow]
    }

    static func render(_ input: Input, _ context: ViewContext) -> Page {
        let rows = input.queues.map { stats, series -> [String] in
            let q = HTML.query(stats.queue)
            func link(_ state: String, _ n: Int) -> String { "<a href=\"/jobs?queue=\(q)&amp;state=\(state)\">\(n)</a>" }
            return ["<a href=\"/jobs?queue=\(q)\">\(HTML.text(stats.queue))</a>", link("pending", stats.pending), link("scheduled", stats.scheduled),
                    link("running", stats.running), link("succeeded", stats.succeeded), link("dead", stats.dead), link("cancelled", stats.cancelled),
                    String(stats.workers), stats.oldestPendingSeconds.map { HTML.age($0) } ?? "–",
                    "\(series.reduce(0, +))", sparkline(series)]
        }
        var body = "<h1>Overview</h1>"
        body += "<section><h2>Queues</h2>" + Layout.table(
            ["queue", "pending", "scheduled", "running", "succeeded", "dead", "cancelled", "workers", "oldest pending", "finished (1 h)", "per 5 min"],
            rows, empty: "No queue yet: push a job (dbq push noop) and it appears here.") + "</section>"
        let busy = input.workers.reduce(0) { $0 + $1.running }, slots = input.workers.reduce(0) { $0 + $1.concurrency }
        body += "<section class=\"cards\">"
        body += card("workers alive", "\(input.workers.count)", detail: "\(busy) of \(slots) slots busy", href: "/workers")
        if let s = input.schedules {
            let alerts = s.entries.filter(\.alert).count
            body += card("beat leader", s.leader.map { String($0.prefix(18)) } ?? "none", detail: s.leader == nil ? "no beat is running" : "leading", href: "/schedules",
                         alert: s.leader == nil && !s.entries.isEmpty)
            body += card("schedule alerts", "\(alerts)", detail: "of \(s.entries.count) entries", href: "/schedules", alert: alerts > 0)
        }
        let backups = input.artefacts.filter { $0.family == "backup" }
        for database in Set(backups.map(\.database)).sorted() {
            guard let newest = backups.filter({ $0.database == database }).max(by: { $0.finishedAt < $1.finishedAt }) else { continue }
            let age = context.now.timeIntervalSince(newest.finishedAt)
            body += card("newest backup of \(database)", HTML.age(age) + " ago", detail: "\(HTML.bytes(newest.bytes)), verified: \(newest.verification ?? "not yet")",
                         href: "/artefacts", alert: age > 26 * 3600)
        }
        body += "</section>"
        return Page(title: "Overview", body: body, section: "overview")
    }

    static func card(_ label: String, _ value: String, detail: String, href: String, alert: Bool = false) -> String {
        "<a class=\"card\(alert ? " alert" : "")\" href=\"\(href)\"><span class=\"label\">\(HTML.text(label))</span><span class=\"value\">\(HTML.text(value))</span><span class=\"detail\">\(HTML.text(detail))</span></a>"
    }

    /// Bars for the counts, as inline SVG (no script, no external image).
    static func sparkline(_ series: [Int]) -> String {
        guard !series.isEmpty else { return "" }
        let top = max(1, series.max() ?? 1)
        let width = 4 * series.count
        let bars = series.enumerated().map { i, n in
            let h = n == 0 ? 0 : max(1, Int((Double(n) / Double(top) * 20).rounded()))
            return "<rect x=\"\(i * 4)\" y=\"\(20 - h)\" width=\"3\" height=\"\(h)\"><title>\(n)</title></rect>"
        }.joined()
        return "<svg class=\"spark\" width=\"\(width)\" height=\"20\" viewBox=\"0 0 \(width) 20\" role=\"img\" aria-label=\"finished per 5 minutes\">\(bars)</svg>"
    }
}
