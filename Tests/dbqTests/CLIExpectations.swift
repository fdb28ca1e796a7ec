import DBQTestSupport
import Testing

/// Bad input: exit 1, one line on stderr holding each fragment, no secret in it.
func expectClear(_ r: CommandResult, _ fragments: [String], hiding secrets: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == 1, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
    let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
    #expect(lines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    for fragment in fragments { #expect(r.stderr.contains(fragment), "missing '\(fragment)' in: \(r.stderr)", sourceLocation: sourceLocation) }
    for secret in secrets { #expect(!r.stderr.contains(secret), "secret leaked: \(r.stderr)", sourceLocation: sourceLocation) }
}
