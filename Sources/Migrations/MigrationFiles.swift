import Crypto
import DatabaseJobs
import Foundation

/// One migration: `NNNN_name.up.sql` and, optionally, `NNNN_name.down.sql`.
public struct MigrationFile: Codable, Sendable, Equatable {
    /// The digits before the first `_` (`0003`): compared as numbers, kept as written.
    public var version: String
    public var name: String
    public var up: String
    public var down: String?

    public init(version: String, name: String, up: String, down: String? = nil) {
        self.version = version
        self.name = name
        self.up = up
        self.down = down
    }

    public var upFile: String { "\(version)_\(name).up.sql" }
    public var downFile: String { "\(version)_\(name).down.sql" }
    /// SHA-256 of the up file's bytes: what the tracking table records.
    public var checksum: String { SHA256.hash(data: Array(up.utf8)).map { String(format: "%02x", $0) }.joined() }
    /// The version as a number, for ordering.
    public var number: Int { Int(version) ?? 0 }
}

/// A migrations folder's files, checked and ordered. Pure over (file name, text) pairs.
public enum MigrationFiles {
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads `NNNN_name.up.sql` / `.down.sql` from `directory`; other files are named as
    /// problems unless they are hidden or a README.
    public static func load(directory: String) throws -> [MigrationFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw Problem(description: "cannot read the migrations folder '\(directory)': it does not exist or is not readable")
        }
        var files: [(String, String)] = []
        for name in names.sorted() where !name.hasPrefix(".") && !name.lowercased().hasPrefix("readme") {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name), let text = String(data: data, encoding: .utf8) else {
                throw Problem(description: "\(directory)/\(name) cannot be read as UTF-8 text")
            }
            files.append((name, text))
        }
        return try parse(files, directory: directory)
    }

    public static func parse(_ files: [(name: String, text: String)], directory: String = "migrations") throws -> [MigrationFile] {
        var ups: [String: MigrationFile] = [:]
        var downs: [String: (String, String)] = [:]
        var versions: [String: String] = [:]
        for (fileName, text) in files {
            let direction: String
            if fileName.hasSuffix(".up.sql") { direction = "up" } else if fileName.hasSuffix(".down.sql") { direction = "down" } else {
                throw Problem(description: "\(directory)/\(fileName): a migration file is named NNNN_name.up.sql or NNNN_name.down.sql")
            }
            let stem = String(fileName.dropLast(direction == "up" ? 7 : 9))
            guard let underscore = stem.firstIndex(of: "_"), stem.startIndex < underscore,
                  stem[..<underscore].allSatisfy(\.isASCII), stem[..<underscore].allSatisfy(\.isNumber),
                  stem.index(after: underscore) < stem.endIndex else {
                throw Problem(description: "\(directory)/\(fileName): the name must start with a version of digits and an underscore, then a name (0001_create_users.up.sql)")
            }
            let version = String(stem[..<underscore])
            let name = String(stem[stem.index(after: underscore)...])
            if direction == "up" {
                let number = String(Int(version) ?? -1)
                if let other = versions[number] {
                    throw Problem(description: "\(directory)/\(fileName) and \(directory)/\(other) have the same version \(version); give one another number")
                }
                versions[number] = fileName
                ups[stem] = MigrationFile(version: version, name: name, up: text)
            } else {
                downs[stem] = (fileName, text)
            }
        }
        for (stem, (fileName, text)) in downs {
            guard ups[stem] != nil else {
                throw Problem(description: "\(directory)/\(fileName) has no \(stem).up.sql beside it")
            }
            ups[stem]!.down = text
        }
        return ups.values.sorted { $0.number < $1.number }
    }
}
