/*
 * workq.c - see workq.h.  One mutex guards the lists, the idle stack, the
 * count of heavy items running and the stop flag.
 *
 * An item wakes the thread idle the shortest time, not any: a client
 * sending one request after another then keeps being served by one
 * thread, whose malloc arena and caches are warm.  Woken at random, every
 * thread's arena grew to the largest request's working set (measured:
 * 173 MB resident instead of 71 after a few 80,000-pair compares).
 */
#include "config.h"
#include "workq.h"

#include <pthread.h>

#include "mem.h"

/* A FIFO of items not started. */
struct fifo {
    struct ctnas_workq_item *head, *tail;
};

struct wthread {
    struct ctnas_workq *q;
    pthread_t t;
    pthread_cond_t cv;         /* signalled to wake this thread */
    struct wthread *next_idle; /* (mu) */
    int idle;                  /* on q->idle (mu) */
};

struct ctnas_workq {
    pthread_mutex_t mu;
    struct fifo light, heavy; /* (mu) */
    int queued;               /* in light and heavy (mu) */
    struct wthread *idle;     /* the idle threads, last idle first (mu) */
    int heavy_running;        /* (mu) */
    int light_streak;         /* light taken over a heavy that could (mu) */
    int heavy_max;
    int stopping;             /* (mu) */
    ctnas_workq_fn run;
    void *ctx;
    int n;                    /* threads started */
    struct wthread *threads;
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

/* Whether a thread could start an item now (mu held). */
static int can_take(const struct ctnas_workq *q)
{
    return q->light.head ||
           (q->heavy.head && q->heavy_running < q->heavy_max);
}

/* The next item a thread may run (mu held), or NULL.  Light ones go
 * first, but at most CTNAS_WORKQ_LIGHT_BURST of them in a row ahead of a
 * heavy one that could start: a steady stream of polls must not hold a
 * compare back for ever. */
static struct ctnas_workq_item *take(struct ctnas_workq *q)
{
    int heavy_ok = q->heavy.head && q->heavy_running < q->heavy_max;
    struct ctnas_workq_item *it = NULL;
    if (!heavy_ok || q->light_streak < CTNAS_WORKQ_LIGHT_BURST)
        it = fifo_pop(&q->light);
    if (it != NULL) {
        q->light_streak += heavy_ok;
    } else if (heavy_ok) {
        it = fifo_pop(&q->heavy);
        q->heavy_running++;
        q->light_streak = 0;
    }
    q->queued -= it != NULL;
    return it;
}

/* Wake the thread idle the shortest time, if any (mu held). */
static void wake_one(struct ctnas_workq *q)
{
    struct wthread *w = q->idle;
    if (w == NULL)
        return;
    q->idle = w->next_idle;
    w->idle = 0;
    pthread_cond_signal(&w->cv);
}

/* Take w off the idle stack, after a spurious wakeup (mu held). */
static void unidle(struct ctnas_workq *q, struct wthread *w)
{
    if (!w->idle)
        return;
    struct wthread **p = &q->idle;
    while (*p != w)
        p = &(*p)->next_idle;
    *p = w->next_idle;
    w->idle = 0;
}

static void *worker(void *arg)
{
    struct wthread *w = arg;
    struct ctnas_workq *q = w->q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct ctnas_workq_item *it = take(q);
        if (it == NULL) {
            if (q->stopping)
                break;
            if (!w->idle) {
                w->next_idle = q->idle;
                q->idle = w;
                w->idle = 1;
            }
            pthread_cond_wait(&w->cv, &q->mu);
            continue;
        }
        unidle(q, w);
        /* More than this thread can do: pass the word on. */
        if (can_take(q))
            wake_one(q);
        int heavy = it->heavy;
        pthread_mutex_unlock(&q->mu);
        q->run(it, q->ctx); /* it may be freed from here on */
        pthread_mutex_lock(&q->mu);
        if (heavy)
            q->heavy_running--;
    }
    unidle(q, w);
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
    q->heavy_max = heavy_max;
    q->run = run;
    q->ctx = ctx;
    for (; q->n < n; q->n++) {
        struct wthread *w = &q->threads[q->n];
        w->q = q;
        if (pthread_cond_init(&w->cv, NULL) != 0)
            goto fail_start;
        if (pthread_create(&w->t, NULL, worker, w) != 0) {
            pthread_cond_destroy(&w->cv);
            goto fail_start;
        }
    }
    *out = q;
    return 0;

fail_start:
    ctnas_workq_free(q); /* the threads started; nothing was queued */
    return CTNAS_ENOMEM;
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
    q->queued++;
    if (can_take(q))
        wake_one(q);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* Threads on the idle stack (mu held). */
static int n_idle(const struct ctnas_workq *q)
{
    int n = 0;
    for (const struct wthread *w = q->idle; w; w = w->next_idle)
        n++;
    return n;
}

void ctnas_workq_load(struct ctnas_workq *q, int *busy, int *queued)
{
    pthread_mutex_lock(&q->mu);
    /* A thread woken but not yet running counts as busy: it is off the
     * idle stack, on its way to an item. */
    *busy = q->stopping ? 0 : q->n - n_idle(q);
    *queued = q->queued;
    pthread_mutex_unlock(&q->mu);
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
    q->queued = 0;
    for (int i = 0; i < q->n; i++)
        pthread_cond_signal(&q->threads[i].cv);
    pthread_mutex_unlock(&q->mu);
    drop_all(&light, drop, q->ctx);
    drop_all(&heavy, drop, q->ctx);
    for (int i = 0; i < q->n; i++)
        pthread_join(q->threads[i].t, NULL);
}

void ctnas_workq_free(struct ctnas_workq *q)
{
    if (q == NULL)
        return;
    ctnas_workq_stop(q, NULL);
    for (int i = 0; i < q->n; i++)
        pthread_cond_destroy(&q->threads[i].cv);
    pthread_mutex_destroy(&q->mu);
    ctnas_free(q->threads);
    ctnas_free(q);
}
