import DBQTestSupport
import Foundation
import Testing

/// Index commands: bad input gets one clear line, nothing queued.
@Suite("dbq index commands: bad input")
struct CLIIndexTests {
    var dbq: String { TestServices.dbqBinary }

    func env() throws -> [String: String] {
        let dir = TestServices.temporaryDirectory("dbq-cli-index")
        try """
            redis: "\(TestServices.redisURL)"
            databases:
              main: "\(TestServices.databaseURL)"
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        return ["DBQ_CONFIG": dir + "/dbq.yaml"]
    }


    @Test("create-index, drop-index, advice: a wrong method, a statement not CONCURRENTLY, an unknown database, options that contradict")
    func refusals() async throws {
        let env = try env()
        expectClear(try await runCommand(dbq, ["push", "create-index", "--database", "main", "--table", "t", "--columns", "a", "--using", "bloom"], environment: env),
                    ["--using bloom is not an index method"])
        expectClear(try await runCommand(dbq, ["push", "create-index", "--database", "main", "--sql", "CREATE INDEX i ON t (a)"], environment: env),
                    ["--sql must say CREATE INDEX CONCURRENTLY"])
        expectClear(try await runCommand(dbq, ["push", "create-index", "--database", "main", "--sql", "CREATE INDEX CONCURRENTLY i ON t (a); DROP TABLE t"], environment: env),
                    ["--sql must be one CREATE INDEX statement"])
        expectClear(try await runCommand(dbq, ["push", "create-index", "--database", "main", "--table", "t"], environment: env), ["create-index needs --columns"])
        expectClear(try await runCommand(dbq, ["push", "create-index", "--database", "nope", "--table", "t", "--columns", "a"], environment: env),
                    ["unknown database 'nope'; configured: main"])
        expectClear(try await runCommand(dbq, ["push", "create-index", "--database", "main", "--table", "t", "--columns", "a", "--require-use"], environment: env),
                    ["--require-use needs --check"])
        expectClear(try await runCommand(dbq, ["indexes", "advise", "--database", "nope"], environment: env), ["unknown database 'nope'"])
        expectClear(try await runCommand(dbq, ["indexes", "advise", "--database", "main", "--min-savings", "150"], environment: env),
                    ["--min-savings is a percentage from 0 to 100"])
        expectClear(try await runCommand(dbq, ["push", "drop-index", "--database", "nope", "--index", "i"], environment: env),
                    ["unknown database 'nope'; configured: main"])
    }
}
