#ifndef CCRYPTOSHA_SHIM_H
#define CCRYPTOSHA_SHIM_H
// OpenSSL's SHA-256 with its state as a plain struct: the masking rules copy a keyed
// state per value, which costs a memcpy here and an allocation through swift-crypto.
// The one-shot SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, whose
// contexts are heap objects: exactly what this module avoids.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#endif
