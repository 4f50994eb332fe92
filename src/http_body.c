/*
 * http_body.c - request bodies and their budget (see http_body.h).
 *
 * Counting bytes only as they came let a burst of uploads in at once,
 * filled the budget half-way through each, and refused most of them,
 * again and again (bench_buffered.py: 11.5 s against 7.4 s for the same
 * 48 uploads): hence promises.  A promise whose bytes do not come (a
 * length announced, then a byte now and then) would hold the budget for
 * nothing: when a body does not fit, the promises of bodies arriving
 * slower than PROMISE_MIN_RATE after their first PROMISE_GRACE seconds
 * are given back, as few as make the room, and their bytes then count as
 * they come.  Only the I/O thread adds to budget->used (workers only give
 * back what they held), so the add-then-undo below cannot refuse another
 * taker.
 */
#include "config.h"
#include "http_body.h"

#include <string.h>
#include <sys/mman.h>

#include "ctnas.h"
#include "mem.h"

#define PROMISE_GRACE 2.0
#define PROMISE_MIN_RATE 65536.0 /* bytes per second */

/* Bodies of BODY_MAP_MIN bytes and more are mapped, not malloc'd: a
 * mapping freed goes back to the system at once, where glibc keeps a
 * freed block of 16 MB in its heap (its mmap threshold rises to the size
 * of the last mapping freed), and the daemon's memory grew past
 * --max-buffered: 688 MB resident for 268 MB of bodies held, in
 * bench_buffered.py's burst. */
#define BODY_MAP_MIN (1u << 20)

void ctnas_body_budget_init(struct ctnas_body_budget *bb, size_t limit)
{
    atomic_init(&bb->used, 0);
    bb->limit = limit;
    bb->promised = NULL;
}

size_t ctnas_body_budget_used(struct ctnas_body_budget *bb)
{
    return atomic_load(&bb->used);
}

void ctnas_body_init(struct ctnas_body *b, struct ctnas_body_budget *bb,
                     double t0)
{
    memset(b, 0, sizeof *b);
    b->budget = bb;
    b->t0 = t0;
}

static void promise_unlink(struct ctnas_body *b)
{
    struct ctnas_body_budget *bb = b->budget;
    if (b->pprev)
        b->pprev->pnext = b->pnext;
    else if (bb->promised == b)
        bb->promised = b->pnext;
    if (b->pnext)
        b->pnext->pprev = b->pprev;
    b->pnext = b->pprev = NULL;
}

void ctnas_body_settle(struct ctnas_body *b)
{
    if (b->promise == 0)
        return;
    atomic_fetch_sub(&b->budget->used, b->promise);
    b->promise = 0;
    promise_unlink(b);
}

static int stalled(const struct ctnas_body *b, double now)
{
    double dt = now - b->t0;
    return dt > PROMISE_GRACE && (double)b->len < dt * PROMISE_MIN_RATE;
}

/* Make room for n bytes by giving back the promises of bodies that do
 * not come, as few as needed, and only when that makes the room: 0, or
 * -1 with none given back. */
static int sweep(struct ctnas_body_budget *bb, size_t n)
{
    double now = ctnas_now_seconds();
    size_t stuck = 0, used = atomic_load(&bb->used);
    for (struct ctnas_body *b = bb->promised; b; b = b->pnext)
        if (stalled(b, now))
            stuck += b->promise;
    if (n > bb->limit || used - stuck > bb->limit - n)
        return -1;
    for (struct ctnas_body *b = bb->promised, *next; b; b = next) {
        next = b->pnext;
        if (atomic_load(&bb->used) <= bb->limit - n)
            break;
        if (stalled(b, now))
            ctnas_body_settle(b);
    }
    return 0;
}

/* Count n bytes against the budget, making room from stalled promises
 * if they do not fit: 0, or -1 with nothing counted. */
static int budget_add(struct ctnas_body_budget *bb, size_t n)
{
    for (int tries = 0; tries < 2; tries++) {
        if (atomic_fetch_add(&bb->used, n) + n <= bb->limit)
            return 0;
        atomic_fetch_sub(&bb->used, n);
        if (tries == 0 && sweep(bb, n) < 0)
            break;
    }
    return -1;
}

int ctnas_body_promise(struct ctnas_body *b, size_t announced)
{
    struct ctnas_body_budget *bb = b->budget;
    b->announced = announced;
    if (announced == 0)
        return 0;
    if (budget_add(bb, announced) < 0)
        return -1;
    b->promise = announced;
    b->pprev = NULL;
    b->pnext = bb->promised;
    if (bb->promised)
        bb->promised->pprev = b;
    bb->promised = b;
    return 0;
}

/* Resize b's buffer to cap bytes: the new buffer, or NULL (the old one
 * kept). */
static char *resize(struct ctnas_body *b, size_t cap)
{
    if (b->mapped) {
        void *p = mremap(b->data, b->cap, cap, MREMAP_MAYMOVE);
        return p == MAP_FAILED ? NULL : p;
    }
    if (cap < BODY_MAP_MIN)
        return ctnas_realloc(b->data, cap);
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (b->len > 0)
        memcpy(p, b->data, b->len);
    ctnas_free(b->data);
    b->mapped = 1;
    return p;
}

int ctnas_body_append(struct ctnas_body *b, const void *data, size_t n)
{
    /* from the promise while it lasts, then against the budget */
    size_t from = n < b->promise ? n : b->promise;
    if (b->len + n + 1 > b->cap) {
        /* an announced length sizes the buffer once */
        size_t cap = b->announced >= b->len + n ? b->announced + 1
                     : b->cap                  ? b->cap
                                               : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = resize(b, cap);
        if (p == NULL)
            return CTNAS_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    /* The promise is spent before the budget is asked for more: making
     * room may give back promises, this body's own among them. */
    b->promise -= from;
    b->held += from;
    if (from > 0 && b->promise == 0)
        promise_unlink(b);
    if (n > from) {
        if (budget_add(b->budget, n - from) < 0) {
            ctnas_body_free(b);
            return -1;
        }
        b->held += n - from;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

void ctnas_body_free(struct ctnas_body *b)
{
    ctnas_body_settle(b);
    if (b->mapped)
        munmap(b->data, b->cap);
    else
        ctnas_free(b->data);
    b->mapped = 0;
    b->data = NULL;
    b->len = b->cap = 0;
    atomic_fetch_sub(&b->budget->used, b->held);
    b->held = 0;
}
