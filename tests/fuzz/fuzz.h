/*
 * fuzz.h - what the libFuzzer targets of tests/fuzz/ share: the entry
 * point's prototype and the invariants every parsed architecture must
 * keep.  A broken invariant abort()s, so libFuzzer (and the replay of
 * tests/fuzz/replay.c under `make check`) reports it as a crash.
 */
#ifndef CTNAS_FUZZ_H
#define CTNAS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "space.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                   \
    do {                                                                \
        if (!(c)) {                                                     \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,  \
                    __LINE__, #c);                                      \
            abort();                                                    \
        }                                                               \
    } while (0)

/* A NUL-terminated copy of data (the caller frees it). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* The comparator's view of a: a DAG in topological order (edges i -> j
 * with i < j only), input first and output last, types in the space's
 * vocabulary, padding zero. */
static inline void fuzz_check_graph(const struct ctnas_space *sp,
                                    const struct ctnas_arch *a)
{
    struct ctnas_graph g;
    memset(&g, 0xa5, sizeof g);
    sp->to_graph(a, &g);
    FUZZ_CHECK(g.n >= 2 && g.n <= sp->max_nodes &&
               g.n <= CTNAS_GRAPH_MAX);
    for (int i = 0; i < CTNAS_GRAPH_MAX; i++) {
        if (i < g.n)
            FUZZ_CHECK(g.types[i] < sp->n_node_types);
        else
            FUZZ_CHECK(g.types[i] == 0);
        for (int j = 0; j < CTNAS_GRAPH_MAX; j++) {
            FUZZ_CHECK(g.adj[i][j] == 0 || g.adj[i][j] == 1);
            if (g.adj[i][j])
                FUZZ_CHECK(i < j && j < g.n);
        }
    }
    FUZZ_CHECK(g.types[0] == 0);                /* "input" in both spaces */
    FUZZ_CHECK(g.types[g.n - 1] == 1);          /* "output" */
}

/* A parsed (canonical) architecture: encode -> parse_string gives the
 * same bytes and hash, to_json -> parse_json too, and its graph is sane. */
static inline void fuzz_check_arch(const struct ctnas_space *sp,
                                   const struct ctnas_arch *a)
{
    FUZZ_CHECK(a->n >= 2 && a->n <= CTNAS_GRAPH_MAX);
    char enc[CTNAS_ENCODING_MAX];
    int len = sp->encode(a, enc, sizeof enc);
    FUZZ_CHECK(len > 0 && (size_t)len < sizeof enc &&
               strlen(enc) == (size_t)len);

    struct ctnas_arch b;
    struct ctnas_err err = {0};
    FUZZ_CHECK(sp->parse_string(enc, &b, &err) == 0);
    FUZZ_CHECK(memcmp(a, &b, sizeof b) == 0);
    char h1[CTNAS_HASH_LEN], h2[CTNAS_HASH_LEN];
    sp->hash(a, h1);
    sp->hash(&b, h2);
    FUZZ_CHECK(strlen(h1) == CTNAS_HASH_LEN - 1 && strcmp(h1, h2) == 0);

    /* The encoding is canonical: encoding the reparse gives it back. */
    char enc2[CTNAS_ENCODING_MAX];
    FUZZ_CHECK(sp->encode(&b, enc2, sizeof enc2) == len &&
               strcmp(enc, enc2) == 0);
    /* Too small a buffer is refused, never overrun. */
    FUZZ_CHECK(sp->encode(a, enc2, (size_t)len) < 0);

    json_t *j = sp->to_json(a);
    FUZZ_CHECK(j != NULL);
    struct ctnas_arch c;
    FUZZ_CHECK(sp->parse_json(j, &c, &err) == 0);
    json_decref(j);
    FUZZ_CHECK(memcmp(a, &c, sizeof c) == 0);

    fuzz_check_graph(sp, a);
}

#endif
