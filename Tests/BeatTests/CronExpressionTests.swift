@testable import Beat
import Foundation
import Testing

func iso(_ text: String) -> Date {
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return ISO8601DateFormatter().date(from: text) ?? fractional.date(from: text)!
}
func isoString(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }
let utc = TimeZone(identifier: "UTC")!
let berlin = TimeZone(identifier: "Europe/Berlin")!
let newYork = TimeZone(identifier: "America/New_York")!

@Suite("Cron expressions")
struct CronExpressionTests {
    func upcoming(_ cron: String, after: String, zone: TimeZone = utc, count: Int = 3) throws -> [String] {
        try CronExpression(cron).upcoming(after: iso(after), in: zone, count: count).map(isoString)
    }

    @Test("fire times in UTC", arguments: [
        ("*/15 * * * *", "2026-01-01T00:07:00Z", ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z"]),
        ("0 0 29 2 *", "2026-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]),
        ("0 0 31 * *", "2026-04-01T00:00:00Z", ["2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"]),
        ("0-30/10 12 * * *", "2026-01-01T12:05:00Z", ["2026-01-01T12:10:00Z", "2026-01-01T12:20:00Z", "2026-01-01T12:30:00Z"]),
        ("0 9 * * MON-FRI", "2026-01-03T10:00:00Z", ["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z"]),
        ("0 0 * * 7", "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-18T00:00:00Z"]),
        ("*/20 * * * * *", "2026-01-01T12:00:05Z", ["2026-01-01T12:00:20Z", "2026-01-01T12:00:40Z", "2026-01-01T12:01:00Z"]),
        ("0 0 1 JAN,jul *", "2026-02-01T00:00:00Z", ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"]),
        ("5/20 * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z"]),
        ("@hourly", "2026-01-01T00:00:00Z", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"]),
        ("@daily", "2026-12-31T23:59:59Z", ["2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z", "2027-01-03T00:00:00Z"]),
        ("@weekly", "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-18T00:00:00Z"]),
        ("@monthly", "2026-01-31T12:00:00Z", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"]),
        ("@yearly", "2026-06-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]),
        ("0 0 1 1 *", "2099-06-01T00:00:00Z", ["2100-01-01T00:00:00Z", "2101-01-01T00:00:00Z", "2102-01-01T00:00:00Z"]),
        ("59 23 31 12 *", "2026-12-31T23:59:00Z", ["2027-12-31T23:59:00Z", "2028-12-31T23:59:00Z", "2029-12-31T23:59:00Z"]),
    ])
    func utcTable(cron: String, after: String, expected: [String]) throws {
        #expect(try upcoming(cron, after: after) == expected)
    }

    @Test("day-of-month and day-of-week both restricted: either matches (Vixie)")
    func vixieOr() throws {
        // 2026-01-01 is a Thursday; 2026-02-01 a Sunday.
        #expect(try upcoming("0 0 1 * MON", after: "2026-01-20T00:00:00Z", count: 3)
            == ["2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"])
        // Day-of-week '*' (even '*/1'): only the day of month counts.
        #expect(try upcoming("0 0 13 * */1", after: "2026-01-01T00:00:00Z", count: 2) == ["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"])
        // A day-of-week restriction makes an otherwise impossible day-of-month fine.
        #expect(try upcoming("0 0 31 2 MON", after: "2026-02-01T00:00:00Z", count: 1) == ["2026-02-02T00:00:00Z"])
    }

    @Test("Europe/Berlin, spring forward: a slot in the skipped hour fires once, at the end of the gap")
    func berlinSpring() throws {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        #expect(try upcoming("30 2 * * *", after: "2026-03-28T12:00:00Z", zone: berlin)
            == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"])
        // Every minute across the gap: 01:59 CET, then once at 03:00 CEST, then 03:01.
        #expect(try upcoming("* * * * *", after: "2026-03-29T00:58:00Z", zone: berlin)
            == ["2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:01:00Z"])
    }

    @Test("Europe/Berlin, fall back: a slot in the repeated hour fires once, at its first occurrence")
    func berlinFall() throws {
        // 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:30 happens twice.
        #expect(try upcoming("30 2 * * *", after: "2026-10-24T12:00:00Z", zone: berlin)
            == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"])
        // Between the two 02:30s the slot is already spent.
        #expect(try upcoming("30 2 * * *", after: "2026-10-25T00:45:00Z", zone: berlin, count: 1) == ["2026-10-26T01:30:00Z"])
    }

    @Test("America/New_York, both transitions")
    func newYorkTransitions() throws {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        #expect(try upcoming("30 2 * * *", after: "2026-03-07T12:00:00Z", zone: newYork, count: 2) == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
        // 2026-11-01: 02:00 EDT goes back to 01:00 EST (06:00 UTC); 01:30 happens twice.
        #expect(try upcoming("30 1 * * *", after: "2026-10-31T12:00:00Z", zone: newYork, count: 2) == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"])
        // An hourly job is not held up by the repeated hour: 00:00, 01:00 EDT, 01:00 EST is the same slot.
        #expect(try upcoming("0 * * * *", after: "2026-11-01T03:30:00Z", zone: newYork, count: 4)
            == ["2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"])
    }

    @Test("fire times in a window, oldest first, bounded")
    func window() throws {
        let cron = try CronExpression("* * * * *")
        let times = cron.fireTimes(after: iso("2026-01-01T00:00:00Z"), through: iso("2026-01-01T00:05:00Z"), in: utc, limit: 100)
        #expect(times.map(isoString) == (1...5).map { String(format: "2026-01-01T00:%02d:00Z", $0) })
        #expect(cron.fireTimes(after: iso("2026-01-01T00:00:00Z"), through: iso("2026-01-02T00:00:00Z"), in: utc, limit: 10).count == 10)
    }

    @Test("expressions that can never fire are refused", arguments: ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 FEB *"])
    func neverFires(cron: String) {
        do {
            _ = try CronExpression(cron)
            Issue.record("accepted \(cron)")
        } catch {
            #expect(error.description.contains("can never fire"))
        }
    }

    @Test("malformed expressions name the field and the bad part", arguments: [
        ("60 * * * *", "minute field '60': 60 is outside 0–59"),
        ("* 24 * * *", "hour field '24': 24 is outside 0–23"),
        ("0 0 0 * *", "day-of-month field '0': 0 is outside 1–31"),
        ("0 0 * 13 *", "month field '13'"),
        ("0 0 * * 8", "day-of-week field '8'"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("0 0 L * *", "L, W and # forms"),
        ("0 0 * * 5#2", "L, W and # forms"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("0 0 * FOO *", "'FOO' is not a number or a name (JAN FEB"),
        ("0 0 1,,2 * *", "empty list item"),
        ("@reboot", "unknown macro"),
        ("", "has 0 fields"),
    ])
    func malformed(cron: String, fragment: String) {
        do {
            _ = try CronExpression(cron)
            Issue.record("accepted \(cron)")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }

    @Test("an every-second schedule is cheap to step through")
    func everySecond() throws {
        let cron = try CronExpression("* * * * * *")
        let start = iso("2026-03-29T00:59:58Z")
        let times = cron.upcoming(after: start, in: berlin, count: 5).map(isoString)
        #expect(times == ["2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-03-29T01:00:01Z", "2026-03-29T01:00:02Z", "2026-03-29T01:00:03Z"])
    }
}
