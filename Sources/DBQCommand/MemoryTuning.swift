import CDBQSystem

/// Fixed malloc thresholds: glibc's adaptive mmap threshold otherwise rises to the size
/// of freed large buffers (16 MiB upload parts) and keeps them in per-thread arenas,
/// which shows as resident memory that never goes back.
public enum MemoryTuning {
    public static let applied: Void = {
        CSystem_tune_malloc(128 << 10, 4)
    }()
}
