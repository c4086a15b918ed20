// Splits a quantized linear over the caller and a few persistent worker threads.
// Why not DispatchQueue.concurrentPerform: a forward makes ~211 products of 10-250 µs with short
// serial gaps between them; a dispatch worker that has gone back to sleep takes longer to wake than
// the product lasts, so the caller ends up doing all the work (measured: 10-token forward, 2 threads
// as slow as 1, with 1.8× the CPU time). These workers spin for SPIN_NS between jobs, then sleep.
//
// Protocol (one job in flight, owned by the caller while it holds `busy`): the job is cut into one
// large chunk per thread (¾ of the rows in all), then 3 small chunks per thread, so threads that
// finish their large chunk at different times even out on the small ones (measured: 10-token
// forward 22.7 → 20.9 ms against 4 equal chunks per thread). The caller writes the job, resets
// `done`, and publishes generation g by storing `ticket` = (g, helpers, chunk count, next chunk 0);
// workers with an index ≥ helpers sit the job out. Everyone taking part, caller included, claims
// chunks by a compare-and-swap on `ticket`, which carries the generation, so a worker that wakes
// late for job g can never claim a chunk of a later job; it reads the job only after a claim
// succeeded, and the caller rewrites the job only when `done` counts every chunk. A worker that
// wakes late or is preempted costs at most one chunk's wait: the caller takes the rest.
#include "quant_kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { POOL_MAX_WORKERS = 15, SPIN_NS = 100000 };  // ≤ 4 · 16 + 1 chunks: the ticket's 8 bits

typedef struct {
    qk_format format;
    int accumulate;
    qk_isa isa;
    const float *x;
    const void *xq;  // with 8-bit activations (qk_linear_q8_parallel): x rounded, and x unused
    const void *w;
    float *y;
    int64_t ldx, t, in, rows;  // x's rows ldx floats apart (qk_x_stride)
    int64_t big, bigCount, small, chunks;  // chunks [0, bigCount) have `big` rows, later ones `small`
} job_t;

static struct {
    pthread_mutex_t busy, mu;
    pthread_cond_t wake;
    _Alignas(64) _Atomic uint64_t ticket;  // generation << 32 | helpers << 24 | chunk count << 16 | next chunk
    _Alignas(64) _Atomic int64_t done;     // chunks of the current job finished
    _Atomic int sleepers;
    int workers;
    job_t job;
} pool = { .busy = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void run_rows(const job_t *j, int64_t o0, int64_t o1) {
    if (j->xq) { qk_linear_q8(j->format, j->isa, j->xq, j->t, j->in, j->w, j->y, j->rows, o0, o1, j->accumulate); return; }
    qk_linear_strided(j->format, j->isa, j->x, j->ldx, j->t, j->in, j->w, j->y, j->rows, o0, o1, j->accumulate);
}

static int64_t chunk_start(const job_t *j, int64_t i) {
    const int64_t s = i <= j->bigCount ? i * j->big : j->bigCount * j->big + (i - j->bigCount) * j->small;
    return s < j->rows ? s : j->rows;
}

// Claims and runs chunks of generation `gen` until none is left.
static void work(uint64_t gen) {
    uint64_t cur = atomic_load(&pool.ticket);
    for (;;) {
        const uint64_t i = cur & 0xFFFF, chunks = (cur >> 16) & 0xFF;
        if (cur >> 32 != gen || i >= chunks) return;
        if (!atomic_compare_exchange_weak(&pool.ticket, &cur, cur + 1)) continue;
        const job_t *j = &pool.job;
        run_rows(j, chunk_start(j, (int64_t)i), chunk_start(j, (int64_t)i + 1));
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        cur = atomic_load(&pool.ticket);
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Returns the first generation other than `seen`: spinning for SPIN_NS, then asleep on `wake`.
static uint64_t next_generation(uint64_t seen) {
    const int64_t t0 = now_ns();
    for (unsigned n = 1;; n++) {
        const uint64_t g = atomic_load_explicit(&pool.ticket, memory_order_acquire) >> 32;
        if (g != seen) return g;
        _mm_pause();
        if (n % 256 == 0 && now_ns() - t0 > SPIN_NS) break;
    }
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add(&pool.sleepers, 1);  // seq_cst with the caller's publish: no lost wake-up
    uint64_t g;
    while ((g = atomic_load(&pool.ticket) >> 32) == seen) pthread_cond_wait(&pool.wake, &pool.mu);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.mu);
    return g;
}

static void *worker_main(void *arg) {
    const uint64_t index = (uint64_t)(uintptr_t)arg;
    uint64_t seen = atomic_load(&pool.ticket) >> 32;  // a job published before this line: the caller does it
    for (;;) {
        seen = next_generation(seen);
        if (index < ((atomic_load(&pool.ticket) >> 24) & 0xFF)) work(seen);
    }
    return NULL;
}

// Starts workers up to `n` (under `busy`); returns how many exist.
static int ensure_workers(int n) {
    if (n > POOL_MAX_WORKERS) n = POOL_MAX_WORKERS;
    while (pool.workers < n) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        const int err = pthread_create(&thread, &attr, worker_main, (void *)(uintptr_t)pool.workers);
        pthread_attr_destroy(&attr);
        if (err != 0) break;
        pool.workers++;
    }
    return pool.workers;
}

// x at the stride the kernels read fastest (qk_x_stride) and on a cache line (QK_X_ALIGN): a copy in this
// thread's buffer when x is not so aligned, or its stride differs from `in` and there are several token
// rows; else x itself; NULL when out of memory. Rows are whole blocks of 32 floats, so every row of an
// aligned x starts on a line too.
static const float *x_at_stride(const float *x, int64_t t, int64_t in, int64_t *ldx) {
    static _Thread_local float *buffer;
    static _Thread_local int64_t capacity;
    *ldx = qk_x_stride(in);
    if (t < 2) *ldx = in;
    if (*ldx == in && (uintptr_t)x % QK_X_ALIGN == 0) return x;
    if (t * *ldx > capacity) {
        float *grown = NULL;
        if (posix_memalign((void **)&grown, QK_X_ALIGN, (size_t)(t * *ldx) * sizeof(float)) != 0) return NULL;
        free(buffer);
        buffer = grown;
        capacity = t * *ldx;
    }
    for (int64_t r = 0; r < t; r++) memcpy(buffer + r * *ldx, x + r * in, (size_t)in * sizeof(float));
    return buffer;
}

static void run_job(job_t job, int threads);

int qk_linear_parallel(qk_format format, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                       float *y, int64_t rows, int accumulate, int threads) {
    // An empty range validates the arguments, so no chunk below can fail.
    const int ok = qk_linear(format, isa, x, t, in, w, y, rows, 0, 0, accumulate);
    if (ok != 0) return ok;
    int64_t ldx;
    const float *xs = x_at_stride(x, t, in, &ldx);
    if (!xs) { xs = x; ldx = in; }  // no memory for the copy: the slower stride, the same result
    run_job((job_t){ format, accumulate, isa, xs, NULL, w, y, ldx, t, in, rows, rows, 1, 0, 1 }, threads);
    return 0;
}

int qk_linear_q8_parallel(qk_format format, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                          float *y, int64_t rows, int accumulate, int threads) {
    static _Thread_local void *buffer;
    static _Thread_local int64_t capacity;
    if (!x || t < 0 || in <= 0 || in % 32 != 0) return -1;
    const int64_t need = t * qk_q8_row_bytes(in);
    if (need > capacity) {
        void *grown = NULL;
        if (posix_memalign(&grown, QK_X_ALIGN, (size_t)(need > 0 ? need : 64)) != 0) return -1;
        free(buffer);
        buffer = grown;
        capacity = need;
    }
    if (qk_quantize_q8(isa, x, t, in, in, buffer) != 0) return -1;
    const int ok = qk_linear_q8(format, isa, buffer, t, in, w, y, rows, 0, 0, accumulate);
    if (ok != 0) return ok;
    run_job((job_t){ format, accumulate, isa, x, buffer, w, y, in, t, in, rows, rows, 1, 0, 1 }, threads);
    return 0;
}

// Runs `job` (its rows, its chunk fields for one chunk of all rows) on the caller and the pool.
static void run_job(job_t job, int threads) {
    const int64_t rows = job.rows;
    // Another thread's product in flight: this one runs alone rather than wait.
    if (threads <= 1 || rows < 4 || pthread_mutex_trylock(&pool.busy) != 0) { run_rows(&job, 0, rows); return; }
    int helpers = ensure_workers(threads - 1);  // more workers than asked for sit this job out
    if (helpers > threads - 1) helpers = threads - 1;
    const int64_t p = helpers + 1;
    // All sizes even (the float32 kernels pair rows), or multiples of 4 (the int8 kernels' one-token tiles).
    const int64_t mask = job.xq ? 3 : 1;
    job.bigCount = p;
    job.big = rows * 3 / 4 / p & ~mask;
    const int64_t rest = rows - p * job.big;
    job.small = ((rest + 3 * p - 1) / (3 * p) + mask) & ~mask;
    job.chunks = p + (rest + job.small - 1) / job.small;
    pool.job = job;
    atomic_store(&pool.done, 0);
    const uint64_t gen = (atomic_load(&pool.ticket) >> 32) + 1;
    atomic_store(&pool.ticket, gen << 32 | (uint64_t)helpers << 24 | (uint64_t)job.chunks << 16);  // publish, after the job
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }
    work(gen);
    // Chunks still running on workers: spin, and yield once it takes long (a worker may be preempted).
    for (unsigned n = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < job.chunks; n++) {
        _mm_pause();
        if (n % 1024 == 0) sched_yield();
    }
    pthread_mutex_unlock(&pool.busy);
}
