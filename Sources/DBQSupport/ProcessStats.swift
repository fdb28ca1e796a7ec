import Foundation

/// Memory figures of this process, read from `/proc/self/status` (Linux).
public enum ProcessStats {
    /// Resident set size now, in bytes (`VmRSS`), or nil where /proc is missing.
    public static func residentBytes() -> Int? { field("VmRSS:") }

    /// Peak resident set size, in bytes (`VmHWM`).
    public static func peakResidentBytes() -> Int? { field("VmHWM:") }

    /// Peak resident set size of another live process, in bytes (`VmHWM` of `/proc/PID/status`).
    public static func peakResidentBytes(pid: Int32) -> Int? { field("VmHWM:", status: "/proc/\(pid)/status") }

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
