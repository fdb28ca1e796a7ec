#if canImport(Glibc)
import Glibc
#endif

/// libpq and libcurl use the system's OpenSSL, which by default tears itself down in an
/// `atexit` handler. A thread still inside OpenSSL when the process exits (a connection
/// authenticating with SCRAM-SHA-256 on a background task, say) then crashes on freed
/// locks, turning a clean exit into SIGSEGV. Asking OpenSSL, before its first use, not to
/// register that handler removes the race: the OS frees everything at exit anyway.
public enum OpenSSLExit {
    /// `OPENSSL_INIT_NO_ATEXIT` (openssl/crypto.h, OpenSSL 1.1.1 and 3).
    static let noAtExit: UInt64 = 0x0008_0000

    /// Call first thing in the process (before any connection). Looks the function up at
    /// run time (libcrypto is loaded with libpq and libcurl), so nothing links OpenSSL.
    public static let disableCleanup: Void = {
        #if canImport(Glibc)
        typealias Initialize = @convention(c) (UInt64, UnsafeRawPointer?) -> Int32
        // RTLD_DEFAULT (nil): every library the process has loaded.
        guard let symbol = dlsym(nil, "OPENSSL_init_crypto") else { return }
        _ = unsafeBitCast(symbol, to: Initialize.self)(noAtExit, nil)
        #endif
    }()
}
