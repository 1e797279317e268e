#pragma once
// glibc's malloc tuning, which Swift's Glibc module does not import (malloc.h), and a huge-page
// hint for the heap. Header-only: nothing to link.
#include <stddef.h>
#include <stdint.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

/// Serves every allocation from the heap and keeps up to `keep_bytes` of freed memory at its top,
/// so the next step's large buffers reuse pages already mapped. Then grows the heap by
/// `huge_bytes` (address space only: nothing is touched) and asks the kernel to back that span
/// with 2 MB pages, so the buffers a run allocates there fault in 512 times less often.
/// `huge_bytes` must stay below `keep_bytes`, or glibc gives the span straight back.
/// Returns 1 when glibc took the settings and the kernel the hint, 0 elsewhere (other C
/// libraries and kernels without transparent huge pages keep their defaults).
static inline int pg_reuse_large_buffers(size_t keep_bytes, size_t huge_bytes) {
#if defined(__GLIBC__)
    if (mallopt(M_MMAP_MAX, 0) != 1 || mallopt(M_TRIM_THRESHOLD, (int)keep_bytes) != 1) return 0;
    void *span = malloc(huge_bytes);
    if (!span) return 0;
    free(span);   // back into the heap's top chunk, which stays mapped below the trim threshold
    uintptr_t top = (uintptr_t)sbrk(0), huge = 2u << 20;
    uintptr_t start = ((uintptr_t)span + huge - 1) & ~(huge - 1), end = top & ~(huge - 1);
    if (end <= start) return 0;
    return madvise((void *)start, end - start, MADV_HUGEPAGE) == 0;
#else
    (void)keep_bytes; (void)huge_bytes;
    return 0;
#endif
}
