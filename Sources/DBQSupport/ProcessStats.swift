import Foundation

/// Memory figures of this process, read from `/proc/self/status` (Linux).
public enum ProcessStats {
    /// Resident set size now, in bytes (`VmRSS`), or nil where /proc is missing.
    public static func residentBytes() -> Int? { field("VmRSS:") }

    /// Peak resident set size, in bytes (`VmHWM`).
    public static func peakResidentBytes() -> Int? { field("VmHWM:") }

    /// Peak resident set size of another live process, in bytes (`VmHWM` of `/proc/PID/status`).
    public static func peakResidentBytes(pid: Int32) -> Int? { field("VmHWM:", status: "/proc/\(pid)/status") }

    /// Resident and proportional set sizes of a live process, in bytes (`Rss`, `Pss` of
    /// `/proc/PID/smaps_rollup`): PSS shares each shared page among its users.
    public static func residentAndProportional(pid: Int32) -> (rss: Int, pss: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return nil }
        func value(_ name: String) -> Int? {
            for line in text.split(separator: "\n") where line.hasPrefix(name) {
                return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
            }
            return nil
        }
        guard let rss = value("Rss:"), let pss = value("Pss:") else { return nil }
        return (rss, pss)
    }

    /// CPU time (user + system) a live process has used, in seconds (`/proc/PID/stat`,
    /// at the usual 100 ticks a second).
    public static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state(0) ppid(1) … utime(11) stime(12).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / 100
    }

    /// The live children of `pid` (read from every `/proc/N/stat`: Debian's kernel has no
    /// `/proc/PID/task/TID/children`).
    public static func children(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var found: [Int32] = []
        for entry in entries {
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // "pid (comm) state ppid …": the command may hold spaces and parentheses.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == pid { found.append(child) }
        }
        return found
    }

    private static func field(_ name: String, status path: String = "/proc/self/status") -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = Int(parts[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }
}
