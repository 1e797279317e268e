// OpenBLAS, opened on the first BLAS call instead of when the process starts, with one thread.
//
// Linked, OpenBLAS's pthread build starts its worker threads from its constructor, before main,
// and each spins in sched_yield for ~0.1 s waiting for work. pgflow never gives it any: its
// kernels run single-threaded GEMMs on their own workers (PGKernels/ConvWorkspace.swift). On two
// cores that spinner took a core from every process's first 100 ms: `pgflow grad` on the 100k
// scene spent 160-170 ms with it and 118-124 ms without. The thread count is read from the
// environment inside that constructor, so it can only be set before the library is loaded: here,
// OPENBLAS_NUM_THREADS=1 for the duration of the dlopen, then the caller's value (or none) again,
// so plugins started later inherit the environment they were given. `openblas_set_num_threads`
// can still raise the count afterwards (pgbench conv does, to time a multi-threaded sgemm).
//
// Each function pgflow calls is a hidden forwarder checked against OpenBLAS's own header.

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CBLAS.h"

#define PG_SONAME "libopenblas.so.0"

// Every forwarded function: return type, name, parameters, argument names.
#define PG_BLAS_FUNCTIONS(R, V) \
    V(cblas_sgemm, (const enum CBLAS_ORDER Order, const enum CBLAS_TRANSPOSE TransA, const enum CBLAS_TRANSPOSE TransB, \
                    const blasint M, const blasint N, const blasint K, const float alpha, const float *A, const blasint lda, \
                    const float *B, const blasint ldb, const float beta, float *C, const blasint ldc), \
      (Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) \
    V(cblas_sgemv, (const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE trans, const blasint m, const blasint n, \
                    const float alpha, const float *a, const blasint lda, const float *x, const blasint incx, \
                    const float beta, float *y, const blasint incy), \
      (order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy)) \
    V(openblas_set_num_threads, (int num_threads), (num_threads)) \
    R(int, openblas_get_num_threads, (void), ()) \
    R(char *, openblas_get_config, (void), ())

#define PG_POINTER(ret, name, params, args) static __typeof__(name) *pg_real_##name;
#define PG_POINTER_V(name, params, args) static __typeof__(name) *pg_real_##name;
PG_BLAS_FUNCTIONS(PG_POINTER, PG_POINTER_V)

static pthread_once_t pg_once = PTHREAD_ONCE_INIT;
static char pg_error[512];   // empty once the library and every symbol were found

static void pg_load(void) {
    const char *caller = getenv("OPENBLAS_NUM_THREADS");
    char *saved = caller ? strdup(caller) : NULL;
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    void *h = dlopen(PG_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (saved) { setenv("OPENBLAS_NUM_THREADS", saved, 1); free(saved); }
    else unsetenv("OPENBLAS_NUM_THREADS");
    if (!h) {
        const char *why = dlerror();
        snprintf(pg_error, sizeof pg_error, "cannot open %s (%s); install OpenBLAS (libopenblas-dev, "
                 "as Scripts/setup.sh does)", PG_SONAME, why ? why : "?");
        return;
    }
#define PG_BIND(ret, name, params, args) \
    if (!(pg_real_##name = (__typeof__(name) *)dlsym(h, #name)) && !pg_error[0]) \
        snprintf(pg_error, sizeof pg_error, "%s has no %s", PG_SONAME, #name);
#define PG_BIND_V(name, params, args) PG_BIND(void, name, params, args)
    PG_BLAS_FUNCTIONS(PG_BIND, PG_BIND_V)
}

// BLAS calls cannot report a failure, so a missing library stops the process with the reason
// (Scripts/setup.sh installs it; the build itself needs its header).
static inline void pg_need(void) {
    pthread_once(&pg_once, pg_load);
    if (pg_error[0]) {
        fprintf(stderr, "pgflow: OpenBLAS is not available: %s\n", pg_error);
        abort();
    }
}

#pragma GCC visibility push(hidden)
#define PG_FORWARD(ret, name, params, args) ret name params { pg_need(); return pg_real_##name args; }
#define PG_FORWARD_V(name, params, args) void name params { pg_need(); pg_real_##name args; }
PG_BLAS_FUNCTIONS(PG_FORWARD, PG_FORWARD_V)
#pragma GCC visibility pop
