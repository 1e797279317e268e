#pragma once
// Cache prefetch hints, which Swift cannot spell (clang's _mm_prefetch is a macro).
// Header-only: nothing to link.

/// Asks for the cache line holding `p` in all cache levels, to be read.
static inline __attribute__((always_inline)) void pg_prefetch_read(const void *p) { __builtin_prefetch(p, 0, 3); }
/// Asks for the cache line holding `p`, to be written (prefetchw where the CPU has it).
static inline __attribute__((always_inline)) void pg_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }
