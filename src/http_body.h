/*
 * http_body.h - request bodies held in memory, and the budget they share
 * (--max-buffered).  Owns: each body's buffer, and the count of bytes
 * held and promised.  Must not touch: connections (http.c drives it).
 *
 * A body with a length is counted whole from its headers (a promise),
 * so the bodies let in can all complete; its bytes then count as held
 * as they arrive.  When a body does not fit, the promises of bodies
 * that arrive too slowly give way (http_body.c says how).  Promises,
 * appends and settling are the I/O thread's alone; a body's text may be
 * freed on any thread once its promise is settled.
 */
#ifndef CTNAS_HTTP_BODY_H
#define CTNAS_HTTP_BODY_H

#include <stdatomic.h>
#include <stddef.h>

struct ctnas_body;

struct ctnas_body_budget {
    atomic_size_t used;          /* bytes held and promised */
    size_t limit;                /* --max-buffered */
    struct ctnas_body *promised; /* bodies holding a promise */
};

struct ctnas_body {
    struct ctnas_body_budget *budget;
    char *data;                  /* len bytes received, NUL room at cap */
    size_t len, cap;
    size_t announced;            /* Content-Length, 0 if none */
    size_t held;                 /* of budget->used: received and kept */
    size_t promise;              /* of budget->used: announced, to come */
    double t0;                   /* when its headers came */
    int mapped;                  /* data is a mapping of its own */
    struct ctnas_body *pnext, *pprev;
};

void ctnas_body_budget_init(struct ctnas_body_budget *bb, size_t limit);
size_t ctnas_body_budget_used(struct ctnas_body_budget *bb);

/* An empty body in bb, its headers come at t0. */
void ctnas_body_init(struct ctnas_body *b, struct ctnas_body_budget *bb,
                     double t0);
/* Promise an announced length: 0, or -1 when it does not fit (nothing
 * promised; the length still sizes the buffer). */
int ctnas_body_promise(struct ctnas_body *b, size_t announced);
/* Append n bytes received: 0; -1 when they do not fit (the body is then
 * emptied and its promise given back); or CTNAS_ENOMEM (nothing
 * appended). */
int ctnas_body_append(struct ctnas_body *b, const void *data, size_t n);
/* Give back what is left of the promise (the body is whole, or will
 * not be read). */
void ctnas_body_settle(struct ctnas_body *b);
/* Free the text and give back what it held, settling it first: on
 * the I/O thread, or on any once settled.  Accepts a body freed
 * already. */
void ctnas_body_free(struct ctnas_body *b);

#endif
