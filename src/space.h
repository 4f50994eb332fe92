/*
 * space.h - the search-space interface.  Each benchmark space is a module
 * (space_nb101.c, space_nb201.c) that fills one const struct ctnas_space;
 * everything else (store, HTTP, comparator, controller) talks to a space
 * only through this table.
 *
 * An architecture is a small value type (struct ctnas_arch): no heap, safe
 * to copy.  It is always held canonical: parse functions validate and
 * canonicalise (NB101: prune nodes off every input->output path).
 */
#ifndef CTNAS_SPACE_H
#define CTNAS_SPACE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ctnas.h"
#include "rng.h"

/* Largest node count of any space's graph (NB201: input + 6 edges + output). */
#define CTNAS_GRAPH_MAX 8
/* Largest native encoding we ever produce, NUL included. */
#define CTNAS_ENCODING_MAX 512
/* MD5 hex + NUL. */
#define CTNAS_HASH_LEN 33

/* The canonical architecture.  Its meaning is the space's:
 * NB101: n nodes (2..7), adj upper triangular, ops[i] an op id;
 * NB201: n = 6 edges, ops[e] the op id of edge e in string order. */
struct ctnas_arch {
    int n;
    uint8_t adj[CTNAS_GRAPH_MAX][CTNAS_GRAPH_MAX];
    uint8_t ops[CTNAS_GRAPH_MAX];
};

/* A 64-bit hash of the struct's bytes, for in-memory hash tables of
 * architectures.  Parsed and canonical archs are zero outside their n
 * nodes, so equal cells hash (and memcmp) equal. */
uint64_t ctnas_arch_hash64(const struct ctnas_arch *a);

/* What the comparator reads: a DAG with an op type per node.
 * adj[i][j] = 1 for an edge i -> j, nodes in topological order, node 0 the
 * input and node n-1 the output.  types[i] < space->n_node_types.  Nodes
 * n..CTNAS_GRAPH_MAX-1 are padding and all zero. */
struct ctnas_graph {
    int n;
    uint8_t adj[CTNAS_GRAPH_MAX][CTNAS_GRAPH_MAX];
    uint8_t types[CTNAS_GRAPH_MAX];
};

struct ctnas_space {
    const char *name;          /* "nasbench101" */
    int n_node_types;          /* vocabulary of ctnas_graph.types */
    const char *const *node_type_names;
    int max_nodes;             /* graph nodes at most */

    /* Parse from the request JSON: either the native string or the
     * object form.  Validates and canonicalises; on error fills err with
     * the rule broken (err->field relative, e.g. "ops[3]"). */
    int (*parse_json)(const json_t *arch, struct ctnas_arch *out,
                      struct ctnas_err *err);
    /* Parse the native string form. */
    int (*parse_string)(const char *s, struct ctnas_arch *out,
                        struct ctnas_err *err);
    /* The canonical encoding as text (what the store keeps and
     * parse_string reads back).  Returns its length, or a negative code if
     * cap is too small. */
    int (*encode)(const struct ctnas_arch *a, char *buf, size_t cap);
    /* New reference: the form GET answers (NB201: string; NB101:
     * {"adjacency", "ops"}). */
    json_t *(*to_json)(const struct ctnas_arch *a);
    /* 32 hex digits; equal for equal (isomorphic, for NB101) cells. */
    void (*hash)(const struct ctnas_arch *a, char out[CTNAS_HASH_LEN]);
    /* The comparator's view. */
    void (*to_graph)(const struct ctnas_arch *a, struct ctnas_graph *g);
    /* Uniform over valid canonical cells (NB101: over labelled specs that
     * pruning leaves whole, so node counts follow the real space). */
    void (*sample)(struct ctnas_rng *rng, struct ctnas_arch *out);
    /* One random valid change: out differs from in. */
    void (*mutate)(const struct ctnas_arch *in, struct ctnas_rng *rng,
                   struct ctnas_arch *out);
    /* New reference: {"name", "ops", "limits"...} for GET /v1/spaces. */
    json_t *(*describe)(void);
};

extern const struct ctnas_space ctnas_space_nb101;
extern const struct ctnas_space ctnas_space_nb201;

/* NULL-terminated list of every space. */
extern const struct ctnas_space *const ctnas_spaces[];

/* The space named name, or NULL. */
const struct ctnas_space *ctnas_space_find(const char *name);
/* The same, also taking the short names nb101 and nb201: a convenience of
 * the eval commands; the API and the store use the full names. */
const struct ctnas_space *ctnas_space_find_short(const char *name);

#endif
