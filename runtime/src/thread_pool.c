/* The pool hands every op's tasks to its workers and waits for them, dozens of times per
 * inference. Waking a thread that sleeps on a condition variable costs a system call and a
 * scheduling delay of tens of microseconds, as much as a whole small op, so both sides spin
 * first: a worker watches the job counter and the caller the pending count for up to
 * DDQ_SPIN_US microseconds (default 50, or 0 with more threads than online processors; 0: never
 * spin, e.g. for instruction counts that must not depend on timing) and only then sleep on the
 * condition variables. Every worker acknowledges
 * every job, with a task or without, so a job is done only when no worker can still be looking
 * at it and the next job's fields can be written. */
#include "thread_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

typedef struct worker {
    ddq_thread_pool *pool;
    int index;
    pthread_t thread;
} worker;

struct ddq_thread_pool {
    int threads;
    int64_t spin_ns;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    atomic_ulong generation; /* bumped for every job; workers run each generation once */
    atomic_int pending;      /* workers that have not yet acknowledged the current job */
    atomic_int sleepers;     /* workers asleep (or about to sleep) on `wake` */
    atomic_bool waiting;     /* the caller asleep (or about to sleep) on `done` */
    atomic_bool stop;
    /* the current job: written before its generation is published, read after */
    ddq_task_fn fn;
    void *context;
    int tasks;
    worker workers[];        /* threads − 1 of them; index 1 … threads − 1 */
};

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Spins until done(pool, arg) or the pool's spin time has passed; 1 if done. The clock is read
 * every 64 rounds only. */
static int spin(ddq_thread_pool *pool, int (*done)(ddq_thread_pool *, unsigned long), unsigned long arg) {
    if (pool->spin_ns <= 0) return done(pool, arg);
    const int64_t end = now_ns() + pool->spin_ns;
    for (unsigned rounds = 1;; rounds++) {
        if (done(pool, arg)) return 1;
        cpu_relax();
        if (rounds % 64 == 0 && now_ns() > end) return done(pool, arg);
    }
}

static int job_published(ddq_thread_pool *pool, unsigned long seen) {
    return atomic_load(&pool->generation) != seen || atomic_load(&pool->stop);
}

static int job_finished(ddq_thread_pool *pool, unsigned long unused) {
    (void)unused;
    return atomic_load(&pool->pending) == 0;
}

static void *worker_main(void *arg) {
    worker *self = arg;
    ddq_thread_pool *pool = self->pool;
    unsigned long seen = 0;
    for (;;) {
        if (!spin(pool, job_published, seen)) {
            /* sleepers is raised before the generation is read again, and the caller raises the
             * generation before it reads sleepers (both sequentially consistent): one of the two
             * sees the other, so a job is never published to a worker that misses it */
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleepers, 1);
            while (!job_published(pool, seen)) pthread_cond_wait(&pool->wake, &pool->lock);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load(&pool->stop)) break;
        seen = atomic_load(&pool->generation);
        if (self->index < pool->tasks) pool->fn(pool->context, self->index);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->waiting)) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

ddq_status ddq_thread_pool_create(int threads, ddq_thread_pool **out, ddq_error *error) {
    if (threads < 1 || threads > DDQ_MAX_THREADS)
        return ddq_fail(error, DDQ_ERR_ARGUMENT, "threads must be 1..%d, got %d", DDQ_MAX_THREADS, threads);
    ddq_thread_pool *pool = calloc(1, sizeof *pool + sizeof(worker) * (size_t)(threads - 1));
    if (!pool) return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for the thread pool");
    pool->threads = threads;
    /* more threads than processors: a spinning thread would hold a processor that a working
     * one waits for, so they sleep at once */
    const long processors = sysconf(_SC_NPROCESSORS_ONLN);
    const char *spin_us = getenv("DDQ_SPIN_US");
    const long long us = spin_us && spin_us[0] ? strtoll(spin_us, NULL, 10)
                         : processors > 0 && threads > processors ? 0
                                                                  : 50;
    pool->spin_ns = (int64_t)us * 1000;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->waiting, false);
    atomic_init(&pool->stop, false);
    for (int i = 1; i < threads; i++) {
        worker *w = &pool->workers[i - 1];
        w->pool = pool;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pool->threads = i; /* free() joins the ones that started */
            ddq_thread_pool_free(pool);
            return ddq_fail(error, DDQ_ERR_THREAD, "could not start worker thread %d of %d", i, threads);
        }
    }
    *out = pool;
    return DDQ_OK;
}

void ddq_thread_pool_free(ddq_thread_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->workers[i - 1].thread, NULL);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

void ddq_thread_pool_run(ddq_thread_pool *pool, ddq_task_fn fn, void *context, int tasks) {
    if (tasks > pool->threads) tasks = pool->threads;
    if (tasks <= 1) {
        if (tasks == 1) fn(context, 0);
        return;
    }
    /* every worker acknowledges the job (pending), those without a task at once */
    pool->fn = fn;
    pool->context = context;
    pool->tasks = tasks;
    atomic_store(&pool->pending, pool->threads - 1);
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(context, 0);
    if (spin(pool, job_finished, 0)) return;
    pthread_mutex_lock(&pool->lock);
    /* read by the last worker after its decrement: as above. An exchange, not a store: a store
     * followed by a load of another location is the one pair a memory model lets pass each
     * other. AArch64 keeps a sequentially consistent store and load (STLR; LDAR) in order, but
     * qemu-aarch64 7.2's translation onto x86 did not, and a worker that read `waiting` as false
     * while this thread read `pending` as nonzero left both asleep (seen once under the tests);
     * a read-modify-write is ordered everywhere. */
    atomic_exchange(&pool->waiting, true);
    while (!job_finished(pool, 0)) pthread_cond_wait(&pool->done, &pool->lock);
    atomic_store(&pool->waiting, false);
    pthread_mutex_unlock(&pool->lock);
}
