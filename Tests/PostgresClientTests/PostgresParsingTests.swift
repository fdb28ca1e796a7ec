import PostgresClient
import Testing

@Suite("PostgreSQL connection strings")
struct PostgresConnectionStringTests {
    @Test("URLs and keyword strings", arguments: [
        ("postgresql://app:pw@db.example:6543/main", "db.example", "6543", "app", "main"),
        ("postgres://app@localhost/main?sslmode=disable", "localhost", "5432", "app", "main"),
        ("host=10.0.0.5 port=5433 user=u dbname=d", "10.0.0.5", "5433", "u", "d"),
        ("postgresql:///main?host=/var/run/postgresql", "/var/run/postgresql", "5432", nil, "main"),
        ("postgresql://[::1]:5432/x", "::1", "5432", nil, "x"),
    ] as [(String, String, String, String?, String)])
    func parses(raw: String, host: String, port: String, user: String?, database: String) throws {
        let c = try PostgresConnectionString(raw)
        #expect(c.host == host)
        #expect(c.port == port)
        #expect(c.user == user)
        #expect(c.database == database)
    }

    @Test("malformed strings are refused by libpq's parser with a clear message", arguments: [
        "",
        "   ",
        "postgresql://host:notaport/db",
        "postgresql://host:70000/db",
        "postgresql://host/db?nosuchoption=1",
        "host=a dbname",
        "host='unterminated",
        "mysql://host/db",
        "postgresql://u:secretpw@host:99999/db",
    ])
    func refuses(raw: String) {
        do {
            _ = try PostgresConnectionString(raw)
            Issue.record("accepted \(raw)")
        } catch {
            #expect(error.code == .invalidConnectionString)
            #expect(error.description.hasPrefix("invalid PostgreSQL connection string"))
            #expect(!error.description.contains("secretpw"))
        }
    }

    @Test("description hides the password")
    func redacted() throws {
        let c = try PostgresConnectionString("postgresql://app:hunter2@db:5432/main")
        #expect(c.description == "postgresql://app:***@db:5432/main")
        #expect(!c.description.contains("hunter2"))
    }

    @Test("replacing the database keeps the rest, including odd characters")
    func replacingDatabase() throws {
        let c = try PostgresConnectionString("postgresql://app:p'w\\x@db:5432/main")
        let other = try PostgresConnectionString(c.replacingDatabase("scratch 'one'"))
        #expect(other.database == "scratch 'one'")
        #expect(other.password == "p'w\\x")
        #expect(other.host == "db")
    }
}

@Suite("SQL identifiers")
struct PostgresIdentifierTests {
    @Test("hostile names are quoted so they stay one identifier", arguments: [
        ("users", "\"users\""),
        ("Users", "\"Users\""),
        ("a\"b", "\"a\"\"b\""),
        ("\"; DROP TABLE users; --", "\"\"\"; DROP TABLE users; --\""),
        ("robert'); drop", "\"robert'); drop\""),
        ("with space", "\"with space\""),
        ("ünïcødé", "\"ünïcødé\""),
        ("\"\"", "\"\"\"\"\"\""),
        ("back\\slash", "\"back\\slash\""),
        ("new\nline", "\"new\nline\""),
    ])
    func quotes(name: String, quoted: String) throws {
        #expect(try PostgresIdentifier.quoted(name) == quoted)
    }

    @Test("names PostgreSQL would mangle are refused", arguments: [
        "", "nul\u{0}byte", String(repeating: "x", count: 64), String(repeating: "é", count: 32),
    ])
    func refuses(name: String) {
        #expect(throws: PostgresError.self) { try PostgresIdentifier.quoted(name) }
    }

    @Test("63 bytes is the longest accepted")
    func longest() throws {
        _ = try PostgresIdentifier.quoted(String(repeating: "x", count: 63))
    }
}
