import DBQSupport
import Testing

@Suite("Redaction")
struct RedactionTests {
    @Test("passwords in URLs are masked", arguments: [
        ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:hunter2@host", "redis://user:***@host"),
        ("postgresql://app:p%40ss@db:5432/main?sslmode=require", "postgresql://app:***@db:5432/main?sslmode=require"),
        ("postgresql://app@db/main", "postgresql://app@db/main"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("not a url", "not a url"),
        ("redis://host/path@x", "redis://host/path@x"),
    ])
    func url(input: String, expected: String) {
        #expect(Redaction.url(input) == expected)
    }

    @Test("scrub removes every occurrence of every secret")
    func scrub() {
        #expect(Redaction.scrub("a s3cret b s3cret", secrets: ["s3cret", ""]) == "a *** b ***")
    }
}
