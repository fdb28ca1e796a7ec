import RedisClient
import Testing

@Suite("Redis URL parsing")
struct RedisConfigurationTests {
    @Test("well-formed URLs", arguments: [
        ("redis://127.0.0.1:6379", "127.0.0.1", 6379, nil, nil, 0),
        ("redis://localhost", "localhost", 6379, nil, nil, 0),
        ("redis://:pw@host:7000/3", "host", 7000, nil, "pw", 3),
        ("redis://user:p%40ss%3Aw@host/1", "host", 6379, "user", "p@ss:w", 1),
        ("redis://secret@host", "host", 6379, nil, "secret", 0),
        ("redis://[::1]:6380/2", "::1", 6380, nil, nil, 2),
        ("REDIS://Host-1.example.com:1", "Host-1.example.com", 1, nil, nil, 0),
        ("  redis://h:2  ", "h", 2, nil, nil, 0),
    ] as [(String, String, Int, String?, String?, Int)])
    func parses(url: String, host: String, port: Int, user: String?, password: String?, database: Int) throws {
        let c = try RedisConfiguration(url: url)
        #expect(c.host == host)
        #expect(c.port == port)
        #expect(c.username == user)
        #expect(c.password == password)
        #expect(c.database == database)
        #expect(try RedisConfiguration(url: c.url) == c)
    }

    @Test("hostile and malformed URLs are refused with a message naming the problem", arguments: [
        ("", "no scheme"),
        ("127.0.0.1:6379", "no scheme"),
        ("http://host:6379", "scheme 'http'"),
        ("rediss://host:6380", "TLS"),
        ("redis://", "host is missing"),
        ("redis://:pw@", "host is missing"),
        ("redis://host:0", "port '0'"),
        ("redis://host:65536", "port '65536'"),
        ("redis://host:-1", "port '-1'"),
        ("redis://host:abc", "port 'abc'"),
        ("redis://host:6379/x", "database 'x'"),
        ("redis://host:6379/-2", "database '-2'"),
        ("redis://host:6379?db=1", "query"),
        ("redis://[::1:6379", "IPv6"),
        ("redis://ho st:6379", "characters"),
        ("redis://host\u{0}evil:6379", "characters"),
        ("redis://:%zz@host", "%-escape"),
    ])
    func refuses(url: String, fragment: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }

    @Test("the password never appears in a message about the URL")
    func passwordNotInMessages() throws {
        let c = try RedisConfiguration(url: "redis://:topsecret@host:1/0")
        #expect(!c.redactedURL.contains("topsecret"))
        do {
            _ = try RedisConfiguration(url: "redis://:topsecret@host:99999")
        } catch {
            #expect(!error.description.contains("topsecret"))
        }
    }

    @Test("a script's name is its SHA-1")
    func scriptSHA() {
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }
}
