#pragma once
#include <zlib.h>

// deflateInit2/inflateInit2 are macros that pass ZLIB_VERSION and sizeof(z_stream).
static inline int pg_deflate_init_raw(z_streamp s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
}
static inline int pg_inflate_init_raw(z_streamp s) { return inflateInit2(s, -MAX_WBITS); }
