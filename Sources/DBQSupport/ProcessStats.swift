import Foundation

/// Memory figures of this process, read from `/proc/self/status` (Linux).
public enum ProcessStats {
    /// Resident set size now, in bytes (`VmRSS`), or nil where /proc is missing.
    public static func residentBytes() -> Int? { field("VmRSS:") }

    /// Peak resident set size, in bytes (`VmHWM`).
    public static func peakResidentBytes() -> Int? { field("VmHWM:") }

    private static func field(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = Int(parts[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }
}
