@testable import Anonymization
import DatabaseJobs
import DBQTestSupport
import Exports
import Foundation
import JobTestSupport
import Logging
import PostgresClient
import Queue
import Testing

/// #32's bar: a generated adversarial table — the column types schemas commonly use, the
/// ends of every integer type, NULLs, empty strings, tabs, newlines, backslashes, quotes,
/// unicode, e-mails differing only in case, text that looks like a date in every DateStyle,
/// JSON and arrays — exported under a strict policy. No original may be anywhere in what
/// the export stores (objects, `schema.sql`, manifest), in the job's result or error, or
/// in the worker's log at trace level; a value a rule cannot mask is a refusal naming the
/// column, never the value.
extension ExportTests {
    static let adversarialPolicy = """
        strict: true
        tables:
          public.adversarial:
            id: hash
            small: hash
            medium: hash
            amount: {rule: noise, percent: 20}
            ratio: {rule: noise, percent: 20}
            born: {rule: generalize, to: year}
            seen_at: {rule: noise, days: 30}
            local_at: {rule: noise, days: 30}
            uid: hash
            flag: null
            name: {rule: fake, kind: full_name}
            email: {rule: email, length: 52, case: keep}
            phone: {rule: hash, pattern: digits}
            note: {rule: redact, email_length: 52, values: [public.adversarial.name]}
            date_like: hash
            ip: null
            profile: {rule: json, other: null, paths: {$.email: {rule: email, length: 52, case: keep}, $.name: {rule: fake, kind: full_name}}}
            tags: {rule: elements, each: hash}
            blob: null
            code: {rule: hash, length: 8}
        """

    /// One row's values, as SQL literals by column and as the originals to look for.
    struct AdversarialRow {
        var literals: [String]
        /// Text originals (whole values, six characters or more: shorter ones occur by chance).
        var texts: [String]
        /// Integer originals per column, compared field by field (a digit run can occur
        /// inside another number by chance).
        var integers: [String: String]
    }

    static func adversarialRows(_ count: Int) -> [AdversarialRow] {
        var state: UInt64 = 0x5EED_0032
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func pick<T>(_ a: [T]) -> T { a[Int(next() % UInt64(a.count))] }
        let shapes = ["Zoë O'Brien-Smith", "名前 太郎", "tab\there", "new\nline", "back\\slash", "quote\"d", "semi;colon, comma",
                      " leading space", "NULL", "\\N", "😀 emoji", "carriage\rreturn", "Ünïcödé Ñame"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return (0..<count).map { i in
            let ids: [Int64] = [.min, .max, 0, -1, 1, .min + 1, .max - 1]
            let id = i < ids.count ? ids[i] : Int64(bitPattern: next())
            let small: Int16 = i == 0 ? .min : i == 1 ? .max : Int16(truncatingIfNeeded: next())
            let medium: Int32 = i == 0 ? .min : i == 1 ? .max : Int32(truncatingIfNeeded: next())
            let name = i % 17 == 0 ? "" : "\(pick(shapes)) Qn\(i)q"
            // Pairs that differ only in case: a plain UNIQUE keeps both.
            let local = "Zed.Qe\(i / 2)x"
            let email = (i % 2 == 0 ? local : local.uppercased()) + "@Example\(i % 3).COM"
            let phone = "+49 (30) \(70_000_000 + i * 7919)"
            let y = 1930 + Int(next() % 80), m = 2 + Int(next() % 11), d = 2 + Int(next() % 27)
            let dd = String(format: "%02d", d), mm = String(format: "%02d", m)
            // Years no other date column has: a noised date elsewhere may land on any day.
            let yl = 2100 + Int(next() % 80)
            let dateLike = pick(["\(dd)/\(mm)/\(yl)", "\(mm)/\(dd)/\(yl)", "\(yl)-\(mm)-\(dd)", "\(dd).\(mm).\(yl)", "\(dd)-\(mm)-\(yl)",
                                 "\(months[m - 1]) \(d) \(yl)", "\(d) \(months[m - 1]) \(yl)", "\(yl)\(mm)\(dd)"])
            let seconds = String(format: "%02d:%02d:%02d", Int(next() % 24), Int(next() % 60), Int(next() % 60))
            let seen = "\(y + 10)-\(mm)-\(dd) \(seconds)"
            // A name the note quotes is in the name column (redact finds the column's values).
            let note = "Call \(i % 23 == 0 || name.isEmpty ? "them" : name) at \(email) or \(phone).\tThanks\\bye"
            let ip = "10.\(i % 256).\(i / 256).7"
            let uuid = UUID(uuidString: String(format: "%08X-%04X-4%03X-8%03X-%012llX", UInt32(truncatingIfNeeded: next()), UInt16(truncatingIfNeeded: next()),
                                               Int(next() % 4096), Int(next() % 4096), next() & 0xFFFF_FFFF_FFFF))!.uuidString.lowercased()
            let amount = String(format: "%.2f", 1000 + Double(next() % 10_000_000) / 100)
            let ratio = String(1000 + Double(next() % 1_000_000) / 1000)
            let profile = #"{"email": \#(jsonString(email)), "name": \#(jsonString(name)), "n": \#(i), "nested": {"phone": \#(jsonString(phone))}}"#
            let literal = PostgresLiteral.quoted
            let literals = [
                "\(id)", "\(small)", "\(medium)", amount, ratio,
                "\(literal("\(y)-\(mm)-\(dd)"))::date", "\(literal(seen + "+00"))::timestamptz", "\(literal(seen))::timestamp",
                "\(literal(uuid))::uuid", i % 3 == 0 ? "NULL" : (i % 2 == 0 ? "true" : "false"),
                i % 23 == 0 ? "NULL" : literal(name), literal(email), literal(phone), literal(note), literal(dateLike),
                "\(literal(ip))::inet", "\(literal(profile))::jsonb",
                "ARRAY[\(literal(name)), \(literal(email)), NULL]::text[]", "convert_to(\(literal(name + email)), 'UTF8')",
                literal("C\(String(format: "%06d", i))X"),
            ]
            let texts = [name, email, email.lowercased(), phone, note, dateLike, ip, uuid, seen, "C\(String(format: "%06d", i))X"]
                .filter { $0.count >= 6 }
            return AdversarialRow(literals: literals, texts: texts, integers: ["id": "\(id)", "small": "\(small)", "medium": "\(medium)"])
        }
    }

    /// Runs one export through a real worker (an in-memory queue: the log is the worker's,
    /// at `logger`'s level) and returns its record: result, or error.
    static func exportThroughWorker(_ env: JobEnvironment, _ payload: ExportJob.Payload, key: String, logger: Logger) async throws -> MemoryQueue.Record {
        let queue = MemoryQueue()
        var registry = JobRegistry()
        registry.register(ExportJob.self, environment: { env })
        let pushed = try await queue.push(JobEnvelope(kind: ExportJob.kind, version: 1, payload: try JSONValue(encoding: payload), queue: "q",
                                                      maxAttempts: 1, timeoutSeconds: 600))
        let worker = Worker(driver: queue, registry: registry, configuration: WorkerConfiguration(
            queues: [("q", 1)], concurrency: 1, lease: .seconds(600), idleWait: .milliseconds(50), shutdownGrace: .seconds(5),
            rescueInterval: .seconds(3600), workerID: "adversarial", exitWhenIdle: true), logger: logger)
        try await withKey(key) { try await worker.run() }
        return try #require(queue.record(pushed.id))
    }

    static func jsonString(_ s: String) -> String {
        var out: [UInt8] = []
        JSONLine.string(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test("a generated adversarial table under a strict policy: no original in the objects, schema.sql, manifest, result or trace log; a value no rule can mask is refused, naming the column, never the value")
    func adversarialDataset() async throws {
        let db = try await Self.emptyDatabase()
        defer { Task { await Self.drop(db) } }
        let rows = Self.adversarialRows(400)
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(db), logger: Self.logger)
        _ = try await c.execute("""
            ALTER DATABASE \(db) SET datestyle = 'SQL, DMY';
            CREATE TABLE adversarial (id bigint PRIMARY KEY, small smallint NOT NULL, medium integer NOT NULL, amount numeric(14,2),
                ratio double precision, born date, seen_at timestamptz, local_at timestamp, uid uuid UNIQUE, flag boolean, name text,
                email varchar(200) UNIQUE, phone text, note text, date_like text, ip inet, profile jsonb, tags text[], blob bytea,
                code char(8));
            INSERT INTO adversarial VALUES \(rows.map { "(" + $0.literals.joined(separator: ", ") + ")" }.joined(separator: ",\n"));
            """)
        await c.close()
        let log = CapturedLog()
        let logger = log.logger("adversarial")
        let env = try JobFixtures.environment(main: db, storage: JobFixtures.localStorage(path: try TestServices.temporaryDirectory("dbq-exports")),
                                              lockWait: .seconds(2), logger: logger)
        let key = "adversarial-key-0123456789abcdef"
        let record = try await Self.exportThroughWorker(env, .init(database: "main", policy: Self.adversarialPolicy, codec: "none"), key: key, logger: logger)
        #expect(record.state == .succeeded, "\(record.state) \(record.error ?? "")")
        let result = record.result
        guard case .object(let fields)? = result, case .string(let folder)? = fields["folder"] else { Issue.record("no folder"); return }
        let (_, store) = try env.store(nil)
        var stored: [UInt8] = []
        var names: [String] = []
        for info in try await store.list(prefix: folder + "/") {
            names.append(info.key)
            stored += try await store.getBytes(info.key, limit: 256 << 20)
        }
        #expect(names.contains { $0.hasSuffix("schema.sql") } && names.contains { $0.hasSuffix("manifest.json") })
        let everything = stored + Array("\(String(describing: result))".utf8) + Array(log.text.utf8)
        #expect(log.count > 0, "the trace log was captured")
        let texts = Set(rows.flatMap(\.texts))
        let leaked = texts.filter { Self.contains(everything, $0) }
        #expect(leaked.isEmpty, "\(leaked.count) of \(texts.count) originals found, e.g. \(leaked.prefix(3).map { $0.debugDescription })")
        // Integers, row by row (COPY reads them in the order they were written): no id,
        // smallint or integer is its own original. (Hashing is a bijection of each band:
        // another row's original may come out, by chance, as anyone's value may.)
        let data = try await store.getBytes(folder + "/public.adversarial.copy", limit: 256 << 20)
        let exported = Self.rows(data)
        #expect(exported.count == 400)
        let kept = zip(rows, exported).flatMap { original, out in
            ["id", "small", "medium"].enumerated().filter { original.integers[$0.element] == out[$0.offset] }.map { "\($0.element)=\(out[$0.offset] ?? "")" }
        }
        #expect(kept.isEmpty, "integers exported as they were: \(kept.prefix(5))")
        // Every dated value moved; births to their year; the smallints still smallints.
        let born = Set(rows.map { $0.literals[5] })
        #expect(exported.allSatisfy { $0[5] == nil || $0[5]!.hasSuffix("-01-01") }, "born generalized to the year")
        #expect(!exported.contains { r in born.contains { $0.contains(r[6] ?? "-") } }, "a noised timestamp kept its date and time")
        #expect(exported.allSatisfy { Int16($0[1] ?? "") != nil }, "a hashed smallint overflowed")

        // A rule that cannot read what it finds: refused, naming the column and the path,
        // with no original in the message or the log.
        let refusing = Self.adversarialPolicy.replacingOccurrences(of: "$.email: {rule: email, length: 52, case: keep}", with: "$.email: {rule: noise, type: date}")
        let before = log.count
        let refused = try await Self.exportThroughWorker(env, .init(database: "main", policy: refusing, codec: "none"), key: key, logger: logger)
        let message = refused.error ?? ""
        #expect(refused.state != .succeeded, "noise on an e-mail was accepted")
        #expect(message.contains("profile") && message.contains("$.email") && message.contains("row"), "\(message)")
        let inError = texts.filter { message.contains($0) }
        #expect(inError.isEmpty, "originals in the error: \(inError.prefix(3))")
        #expect(log.text.contains("$.email"), "the worker logged the refusal")
        #expect(log.count > before)
        let logged = texts.filter { log.text.contains($0) }
        #expect(logged.isEmpty, "originals in the log: \(logged.prefix(3))")
    }
}
