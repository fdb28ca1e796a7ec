#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>

/* deflateInit2/inflateInit2 are macros; these are their typed forms for gzip framing. */
static inline int CZlib_deflateInitGzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/* 15 + 32: accept a gzip or zlib header. */
static inline int CZlib_inflateInitGzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}
#endif
