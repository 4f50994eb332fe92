/*
 * workq.c - see workq.h.  One mutex guards the lists, the count of heavy
 * items running and the stop flag; idle threads wait on one condition
 * variable.
 */
#include "config.h"
#include "workq.h"

#include <pthread.h>

#include "mem.h"

/* A FIFO of items not started. */
struct fifo {
    struct ctnas_workq_item *head, *tail;
};

struct ctnas_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fifo light, heavy; /* (mu) */
    int heavy_running;        /* (mu) */
    int heavy_max;
    int stopping;             /* (mu) */
    ctnas_workq_fn run;
    void *ctx;
    int n;                    /* threads started */
    pthread_t *threads;
};

static void fifo_push(struct fifo *f, struct ctnas_workq_item *it)
{
    it->next = NULL;
    if (f->tail)
        f->tail->next = it;
    else
        f->head = it;
    f->tail = it;
}

static struct ctnas_workq_item *fifo_pop(struct fifo *f)
{
    struct ctnas_workq_item *it = f->head;
    if (it) {
        f->head = it->next;
        if (f->head == NULL)
            f->tail = NULL;
        it->next = NULL;
    }
    return it;
}

/* The next item this thread may run (mu held), or NULL. */
static struct ctnas_workq_item *take(struct ctnas_workq *q)
{
    struct ctnas_workq_item *it = fifo_pop(&q->light);
    if (it == NULL && q->heavy_running < q->heavy_max) {
        it = fifo_pop(&q->heavy);
        if (it)
            q->heavy_running++;
    }
    return it;
}

static void *worker(void *arg)
{
    struct ctnas_workq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct ctnas_workq_item *it;
        while ((it = take(q)) == NULL && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (it == NULL)
            break; /* stopping, and nothing left this thread may take */
        int heavy = it->heavy;
        pthread_mutex_unlock(&q->mu);
        q->run(it, q->ctx); /* it may be freed from here on */
        pthread_mutex_lock(&q->mu);
        if (heavy) {
            q->heavy_running--;
            /* A heavy item held back by the limit may start now. */
            if (q->heavy.head)
                pthread_cond_signal(&q->cv);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int ctnas_workq_new(int n, int heavy_max, ctnas_workq_fn run, void *ctx,
                    struct ctnas_workq **out)
{
    struct ctnas_workq *q = ctnas_calloc(1, sizeof *q);
    if (q == NULL)
        return CTNAS_ENOMEM;
    q->threads = ctnas_calloc((size_t)n, sizeof *q->threads);
    if (q->threads == NULL)
        goto fail_threads;
    if (pthread_mutex_init(&q->mu, NULL) != 0)
        goto fail_mu;
    if (pthread_cond_init(&q->cv, NULL) != 0)
        goto fail_cv;
    q->heavy_max = heavy_max;
    q->run = run;
    q->ctx = ctx;
    for (; q->n < n; q->n++)
        if (pthread_create(&q->threads[q->n], NULL, worker, q) != 0) {
            ctnas_workq_free(q); /* nothing was queued */
            return CTNAS_ENOMEM;
        }
    *out = q;
    return 0;

fail_cv:
    pthread_mutex_destroy(&q->mu);
fail_mu:
    ctnas_free(q->threads);
fail_threads:
    ctnas_free(q);
    return CTNAS_ENOMEM;
}

int ctnas_workq_push(struct ctnas_workq *q, struct ctnas_workq_item *item)
{
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        return CTNAS_EBUSY;
    }
    fifo_push(item->heavy ? &q->heavy : &q->light, item);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void drop_all(struct fifo *f, ctnas_workq_fn drop, void *ctx)
{
    struct ctnas_workq_item *it;
    while ((it = fifo_pop(f)) != NULL)
        if (drop)
            drop(it, ctx);
}

void ctnas_workq_stop(struct ctnas_workq *q, ctnas_workq_fn drop)
{
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    q->stopping = 1;
    /* Take the items not started, so the threads only finish theirs. */
    struct fifo light = q->light, heavy = q->heavy;
    q->light.head = q->light.tail = NULL;
    q->heavy.head = q->heavy.tail = NULL;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    drop_all(&light, drop, q->ctx);
    drop_all(&heavy, drop, q->ctx);
    for (int i = 0; i < q->n; i++)
        pthread_join(q->threads[i], NULL);
}

void ctnas_workq_free(struct ctnas_workq *q)
{
    if (q == NULL)
        return;
    ctnas_workq_stop(q, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    ctnas_free(q->threads);
    ctnas_free(q);
}
