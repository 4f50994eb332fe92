/*
 * workq.h - a fixed set of threads running queued items, in two classes.
 *
 * http.c hands each request to one so that a long handler never holds up
 * the thread that reads and writes the connections.  Light items (polls,
 * lookups) go ahead of heavy ones (compares, ranks, uploads), at most
 * CTNAS_WORKQ_LIGHT_BURST in a row ahead of a heavy one that could start,
 * and heavy ones take at most heavy_max threads at once, so with n >
 * heavy_max a thread is always left for a poll while long requests run.
 * Within a class, items run in the order pushed.  Items are intrusive:
 * the caller embeds a struct ctnas_workq_item in its own record, so
 * pushing never allocates and never fails for memory.
 */
#ifndef CTNAS_WORKQ_H
#define CTNAS_WORKQ_H

#include "ctnas.h"

struct ctnas_workq;

#define CTNAS_WORKQ_LIGHT_BURST 8

struct ctnas_workq_item {
    struct ctnas_workq_item *next;
    int heavy;
};

/* Runs one item on a pool thread (or, for items never started, on the
 * thread that frees the queue); ctx is the one given to ctnas_workq_new. */
typedef void (*ctnas_workq_fn)(struct ctnas_workq_item *item, void *ctx);

/* Start n threads that call run on each pushed item, at most heavy_max
 * (1..n) of them on heavy items.  *out is new; free it with
 * ctnas_workq_free.  CTNAS_ENOMEM when a thread cannot start. */
int ctnas_workq_new(int n, int heavy_max, ctnas_workq_fn run, void *ctx,
                    struct ctnas_workq **out);
/* Queue item (borrowed until run or drop has been called on it) in its
 * class (item->heavy).  Any thread.  CTNAS_EBUSY once ctnas_workq_free
 * has begun. */
int ctnas_workq_push(struct ctnas_workq *q, struct ctnas_workq_item *item);
/* Threads running an item, and items waiting for one, now. */
void ctnas_workq_load(struct ctnas_workq *q, int *busy, int *queued);
/* Stop: items not yet started go to drop (on the calling thread), the
 * running ones finish and the threads are joined.  A push from now on is
 * refused; a second stop does nothing. */
void ctnas_workq_stop(struct ctnas_workq *q, ctnas_workq_fn drop);
/* Stop (dropping nothing) if not stopped, and free q (accepts NULL). */
void ctnas_workq_free(struct ctnas_workq *q);

#endif
