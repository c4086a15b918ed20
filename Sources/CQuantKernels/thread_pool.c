// Splits a quantized linear over the caller and a few persistent worker threads.
// Why not DispatchQueue.concurrentPerform: a forward makes ~211 products of 10-250 µs with short
// serial gaps between them; a dispatch worker that has gone back to sleep takes longer to wake than
// the product lasts, so the caller ends up doing all the work (measured: 2 threads as slow as 1,
// with 1.8× the CPU time). These workers spin briefly between jobs (SPIN_NS) and then sleep.
//
// Protocol (generation numbers, one job in flight): the caller owns the job while holding `busy`.
// It writes the job, then publishes generation g. Chunk 0 is the caller's; chunk i + 1 belongs to
// worker i, which must first claim it by moving its `claim` from g − 1 to g. After its own chunk the
// caller claims every chunk still unclaimed and runs it itself, so a worker that wakes late costs
// nothing; it then waits only for chunks workers did claim (`done` reaches g). A worker reads the
// job only after a successful claim, and the caller changes the job only after all claimed chunks
// are done, so no job is read while it is written.
#include "quant_kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

enum { POOL_MAX_WORKERS = 15, SPIN_NS = 200000 };

typedef struct {
    int q8, accumulate;
    qk_isa isa;
    const float *x;
    const void *w;
    float *y;
    int64_t t, in, rows, chunk;
} job_t;

typedef struct {
    _Alignas(64) _Atomic uint64_t claim;  // last generation whose chunk was claimed (by anyone)
    _Atomic uint64_t done;                // last generation whose chunk this worker finished
    uint64_t start;                       // generation when the worker was started
} worker_t;

static struct {
    pthread_mutex_t busy, mu;
    pthread_cond_t wake;
    _Atomic uint64_t gen;
    _Atomic int sleepers;
    int workers;
    job_t job;
    worker_t w[POOL_MAX_WORKERS];
} pool = { .busy = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void run_chunk(const job_t *j, int64_t i) {
    const int64_t o0 = i * j->chunk < j->rows ? i * j->chunk : j->rows;
    const int64_t o1 = o0 + j->chunk < j->rows ? o0 + j->chunk : j->rows;
    if (j->q8) qk_linear_q8_0(j->isa, j->x, j->t, j->in, j->w, j->y, j->rows, o0, o1, j->accumulate);
    else qk_linear_q4_1(j->isa, j->x, j->t, j->in, j->w, j->y, j->rows, o0, o1, j->accumulate);
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
        const uint64_t g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g != seen) return g;
        _mm_pause();
        if (n % 256 == 0 && now_ns() - t0 > SPIN_NS) break;
    }
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add(&pool.sleepers, 1);  // seq_cst with the caller's publish: no lost wake-up
    uint64_t g;
    while ((g = atomic_load(&pool.gen)) == seen) pthread_cond_wait(&pool.wake, &pool.mu);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.mu);
    return g;
}

static void *worker_main(void *arg) {
    worker_t *me = arg;
    const int64_t index = me - pool.w;
    uint64_t seen = me->start;
    for (;;) {
        const uint64_t g = next_generation(seen);
        seen = g;
        uint64_t expected = g - 1;
        if (!atomic_compare_exchange_strong(&me->claim, &expected, g)) continue;  // taken over, or not ours
        run_chunk(&pool.job, index + 1);
        atomic_store_explicit(&me->done, g, memory_order_release);
    }
    return NULL;
}

// Starts workers up to `n` (under `busy`); returns how many exist.
static int ensure_workers(int n) {
    if (n > POOL_MAX_WORKERS) n = POOL_MAX_WORKERS;
    while (pool.workers < n) {
        worker_t *w = &pool.w[pool.workers];
        const uint64_t g = atomic_load(&pool.gen);
        atomic_store(&w->claim, g);
        atomic_store(&w->done, g);
        w->start = g;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        const int err = pthread_create(&thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (err != 0) break;
        pool.workers++;
    }
    return pool.workers;
}

int qk_linear_parallel(int q8, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                       float *y, int64_t rows, int accumulate, int threads) {
    // An empty range validates the arguments, so no chunk below can fail.
    const int ok = q8 ? qk_linear_q8_0(isa, x, t, in, w, y, rows, 0, 0, accumulate)
                      : qk_linear_q4_1(isa, x, t, in, w, y, rows, 0, 0, accumulate);
    if (ok != 0) return ok;
    job_t job = { q8, accumulate, isa, x, w, y, t, in, rows, rows };
    // Another thread's product in flight: this one runs alone rather than wait.
    if (threads <= 1 || rows < 4 || pthread_mutex_trylock(&pool.busy) != 0) { run_chunk(&job, 0); return 0; }
    int helpers = ensure_workers(threads - 1);
    if (helpers > threads - 1) helpers = threads - 1;
    job.chunk = ((rows + helpers) / (helpers + 1) + 1) & ~(int64_t)1;  // even: the kernel pairs rows
    pool.job = job;
    const uint64_t g = atomic_load(&pool.gen) + 1;
    for (int i = helpers; i < pool.workers; i++) atomic_store(&pool.w[i].claim, g);  // no chunk this time
    atomic_store(&pool.gen, g);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }
    run_chunk(&pool.job, 0);
    int claimed[POOL_MAX_WORKERS];
    for (int i = 0; i < helpers; i++) {
        uint64_t expected = g - 1;
        claimed[i] = !atomic_compare_exchange_strong(&pool.w[i].claim, &expected, g);
        if (!claimed[i]) run_chunk(&pool.job, i + 1);
    }
    for (int i = 0; i < helpers; i++)
        while (claimed[i] && atomic_load_explicit(&pool.w[i].done, memory_order_acquire) != g) _mm_pause();
    pthread_mutex_unlock(&pool.busy);
    return 0;
}
