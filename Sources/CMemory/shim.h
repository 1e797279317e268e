#pragma once
// glibc's malloc tuning, which Swift's Glibc module does not import (malloc.h).
// Header-only: nothing to link.
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/// Serves every allocation from the heap and keeps up to `keep_bytes` of freed memory at its top,
/// so the next step's large buffers reuse pages already mapped. Returns 1 when glibc took both
/// settings, 0 elsewhere (other C libraries keep their defaults).
static inline int pg_reuse_large_buffers(int keep_bytes) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, keep_bytes) == 1;
#else
    (void)keep_bytes;
    return 0;
#endif
}
