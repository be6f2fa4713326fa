/* A small fixed pool: the caller plus threads − 1 workers, started once per session. */
#ifndef DDQ_THREAD_POOL_H
#define DDQ_THREAD_POOL_H

#include "ddq/ddq.h"

typedef struct ddq_thread_pool ddq_thread_pool;
typedef void (*ddq_task_fn)(void *context, int task);

ddq_status ddq_thread_pool_create(int threads, ddq_thread_pool **pool, ddq_error *error);
void ddq_thread_pool_free(ddq_thread_pool *pool);
/* Runs fn(context, t) for t = 0 … tasks − 1 (tasks ≤ threads), task t on thread t (0 = the
 * caller), and returns when all are done. Allocates nothing. */
void ddq_thread_pool_run(ddq_thread_pool *pool, ddq_task_fn fn, void *context, int tasks);

#endif
