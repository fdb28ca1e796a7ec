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

/// An option the subcommand does not take: the command line is wrong (exit 64), the option
/// named, and the subcommand's help pointed to.
func expectUnknownOption(_ r: CommandResult, _ option: String, help: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == 64, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains("Unknown option '\(option)'"), "\(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains("See '\(help) --help'"), "\(r.stderr)", sourceLocation: sourceLocation)
}
