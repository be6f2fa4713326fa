#include "thread_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "error.h"

typedef struct worker {
    ddq_thread_pool *pool;
    int index;
    pthread_t thread;
} worker;

struct ddq_thread_pool {
    int threads;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    unsigned long generation; /* bumped for every job; workers run each generation once */
    int pending;              /* worker tasks of the current job still running */
    bool stop;
    ddq_task_fn fn;
    void *context;
    int tasks;
    worker workers[];         /* threads − 1 of them; index 1 … threads − 1 */
};

static void *worker_main(void *arg) {
    worker *self = arg;
    ddq_thread_pool *pool = self->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->generation == seen && !pool->stop) pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop) break;
        seen = pool->generation;
        if (self->index < pool->tasks) {
            ddq_task_fn fn = pool->fn;
            void *context = pool->context;
            pthread_mutex_unlock(&pool->lock);
            fn(context, self->index);
            pthread_mutex_lock(&pool->lock);
            if (--pool->pending == 0) pthread_cond_signal(&pool->done);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

ddq_status ddq_thread_pool_create(int threads, ddq_thread_pool **out, ddq_error *error) {
    if (threads < 1 || threads > DDQ_MAX_THREADS)
        return ddq_fail(error, DDQ_ERR_ARGUMENT, "threads must be 1..%d, got %d", DDQ_MAX_THREADS, threads);
    ddq_thread_pool *pool = calloc(1, sizeof *pool + sizeof(worker) * (size_t)(threads - 1));
    if (!pool) return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for the thread pool");
    pool->threads = threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
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
    pool->stop = true;
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
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->context = context;
    pool->tasks = tasks;
    pool->pending = tasks - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    fn(context, 0);
    pthread_mutex_lock(&pool->lock);
    while (pool->pending > 0) pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
