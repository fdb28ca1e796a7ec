import DBQSupport
import Glibc
import Testing

@Suite("OpenSSL's exit-time cleanup is off")
struct OpenSSLExitTests {
    @Test("OPENSSL_init_crypto is found in the process (libpq and libcurl load libcrypto), so the no-atexit option is applied")
    func found() {
        OpenSSLExit.disableCleanup
        #expect(dlsym(nil, "OPENSSL_init_crypto") != nil)
    }
}
