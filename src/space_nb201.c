/*
 * space_nb201.c - the NAS-Bench-201 space ("nasbench201"): a 4-node cell
 * with an op on each of its 6 edges, 5^6 = 15,625 cells.  Owns the strict
 * parser of the native string, its hash, the edge-to-node graph the
 * comparator reads, sampling and mutation.  Knows nothing of HTTP or the
 * store.
 *
 * The native string is the identity of a cell:
 *   |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
 * where op~k in group j (1..3) is the edge k -> j.  struct ctnas_arch
 * holds n = 6 and ops[e], e in string order (0->1, 0->2, 1->2, 0->3,
 * 1->3, 2->3); adj is unused and zero.
 */
#include "config.h"
#include "space.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "jsonv.h"
#include "md5.h"

#define NB201_EDGES 6
#define NB201_CELLS 15625

/* NAS-Bench-201's own op order.  Never reorder: the ids are the choices
 * of the controller's heads and, shifted by two, the comparator's node
 * types, so saved states and models depend on them. */
enum {
    NB201_NONE,
    NB201_SKIP,
    NB201_CONV1X1,
    NB201_CONV3X3,
    NB201_AVGPOOL,
    NB201_N_OPS
};
#define NB201_OPS_LIST \
    "none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"

/* Graph node types: input, output, then the ops, so type = op + 2. */
enum { NB201_T_INPUT, NB201_T_OUTPUT, NB201_T_FIRST_OP };
#define NB201_N_TYPES (NB201_T_FIRST_OP + NB201_N_OPS)

static const char *const nb201_type_names[NB201_N_TYPES] = {
    "input", "output", "none", "skip_connect", "nor_conv_1x1",
    "nor_conv_3x3", "avg_pool_3x3",
};
static const char *const *const nb201_op_names =
    nb201_type_names + NB201_T_FIRST_OP;

/* Edge e runs from edge_from[e] to edge_to[e]; string order. */
static const int edge_from[NB201_EDGES] = {0, 0, 1, 0, 1, 2};
static const int edge_to[NB201_EDGES] = {1, 2, 2, 3, 3, 3};

/* Error fields of both forms, named as the object form's.  A table,
 * not snprintf: formatting one per edge of every cell parsed cost a
 * batched compare a fifth of its time. */
static const char *const edge_field[NB201_EDGES] = {
    "ops[0]", "ops[1]", "ops[2]", "ops[3]", "ops[4]", "ops[5]",
};

/* The op named by the len bytes at name (not NUL-terminated inside the
 * cell string), or -1. */
static int nb201_op_of(const char *name, size_t len)
{
    /* Lengths and last letters first: every edge of every cell of a
     * batch comes through here, and most names differ only there. */
    static const size_t op_len[NB201_N_OPS] = {4, 12, 12, 12, 12};
    for (int k = 0; k < NB201_N_OPS; k++)
        if (op_len[k] == len && nb201_op_names[k][len - 1] == name[len - 1] &&
            memcmp(nb201_op_names[k], name, len) == 0)
            return k;
    return -1;
}

/* Strict: only the one canonical spelling is accepted, with an error
 * that says where it went wrong, rather than a guess at what a sloppy
 * string meant.  Per-edge errors name ops[e], the field the object form
 * uses, so both forms report alike.  out is written only on success. */
static int nb201_parse_string(const char *s, struct ctnas_arch *out,
                              struct ctnas_err *err)
{
    if (s == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "", "missing architecture");
    if (*s == '\0')
        return ctnas_err_set(err, CTNAS_EINVAL, "",
                             "empty nasbench201 cell string; expected "
                             "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|");
    struct ctnas_arch a;
    memset(&a, 0, sizeof a);
    a.n = NB201_EDGES;
    const char *p = s;
    int e = 0;
    for (int j = 1; j <= 3; j++) {
        if (j > 1) {
            if (*p == '\0')
                return ctnas_err_set(err, CTNAS_EINVAL, "",
                                     "too few groups: %d, expected 3 "
                                     "separated by '+'", j - 1);
            if (*p != '+')
                return ctnas_err_set(err, CTNAS_EINVAL, "",
                                     "group %d must have exactly %d "
                                     "edge(s), then '+' (offset %td)",
                                     j - 1, j - 1, p - s);
            p++;
        }
        if (*p != '|')
            return ctnas_err_set(err, CTNAS_EINVAL, "",
                                 "group %d must start with '|' (offset %td)",
                                 j, p - s);
        p++;
        for (int k = 0; k < j; k++, e++) {
            const char *field = edge_field[e];
            if (*p == '+' || *p == '\0')
                return ctnas_err_set(err, CTNAS_EINVAL, "",
                                     "group %d has %d edges, expected %d",
                                     j, k, j);
            const char *q = p;
            while (*q != '\0' && *q != '~' && *q != '|' && *q != '+')
                q++;
            int len = (int)(q - p);
            if (*q != '~')
                return ctnas_err_set(err, CTNAS_EINVAL, field,
                                     "edge %d -> %d must be written "
                                     "'op~%d|', got '%.*s'", k, j, k,
                                     len > 40 ? 40 : len, p);
            int op = nb201_op_of(p, (size_t)len);
            if (op < 0)
                return ctnas_err_set(err, CTNAS_EINVAL, field,
                                     "unknown op '%.*s'; expected one of "
                                     NB201_OPS_LIST, len > 40 ? 40 : len, p);
            /* The index must be exactly k: one digit, then '|' (the
             * || stops before q[2] when q[1] is the NUL). */
            if (q[1] != '0' + k || q[2] != '|') {
                const char *r = q + 1;
                while (*r != '\0' && *r != '|' && *r != '+' && r - q < 10)
                    r++;
                if (*r == '|')
                    r++;
                return ctnas_err_set(err, CTNAS_EINVAL, field,
                                     "edge %d of group %d must be "
                                     "'%s~%d|' (edge %d -> %d), got "
                                     "'%s%.*s'", k, j, nb201_op_names[op], k,
                                     k, j, nb201_op_names[op], (int)(r - q),
                                     q);
            }
            a.ops[e] = (uint8_t)op;
            /* Past '~', the digit and '|'. */
            p = q + 3;
        }
    }
    if (*p == '+')
        return ctnas_err_set(err, CTNAS_EINVAL, "",
                             "too many groups: expected 3 separated by "
                             "'+'");
    if (*p != '\0')
        return ctnas_err_set(err, CTNAS_EINVAL, "",
                             "trailing characters after the third group "
                             "at offset %td: '%.20s'", p - s, p);
    *out = a;
    return 0;
}

/* The object form: {"ops": [6 op names in string order]}. */
static int nb201_parse_object(const json_t *obj, struct ctnas_arch *out,
                              struct ctnas_err *err)
{
    static const char *const keys[] = {"ops", NULL};
    int rc = ctnas_jsonv_only(obj, "", keys, err);
    if (rc < 0)
        return rc;
    const json_t *ops = json_object_get(obj, "ops");
    if (ops == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "ops",
                             "missing ops: 6 op names in the string's edge "
                             "order (0->1, 0->2, 1->2, 0->3, 1->3, 2->3)");
    if (!json_is_array(ops) || json_array_size(ops) != NB201_EDGES)
        return ctnas_err_set(err, CTNAS_EINVAL, "ops",
                             "ops must be an array of 6 op names");
    struct ctnas_arch a;
    memset(&a, 0, sizeof a);
    a.n = NB201_EDGES;
    for (int e = 0; e < NB201_EDGES; e++) {
        const char *field = edge_field[e];
        const char *s = json_string_value(json_array_get(ops, (size_t)e));
        if (s == NULL)
            return ctnas_err_set(err, CTNAS_EINVAL, field,
                                 "%s must be an op name string", field);
        int op = nb201_op_of(s, strlen(s));
        if (op < 0)
            return ctnas_err_set(err, CTNAS_EINVAL, field,
                                 "unknown op '%.40s'; expected one of "
                                 NB201_OPS_LIST, s);
        a.ops[e] = (uint8_t)op;
    }
    *out = a;
    return 0;
}

static int nb201_parse_json(const json_t *arch, struct ctnas_arch *out,
                            struct ctnas_err *err)
{
    if (json_is_string(arch))
        return nb201_parse_string(json_string_value(arch), out, err);
    if (json_is_object(arch))
        return nb201_parse_object(arch, out, err);
    return ctnas_err_set(err, CTNAS_EINVAL, "",
                         "a nasbench201 cell is a string "
                         "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| or an object "
                         "{\"ops\": [6 op names]}");
}

static int nb201_encode(const struct ctnas_arch *a, char *buf, size_t cap)
{
    char tmp[CTNAS_ENCODING_MAX];
    size_t len = 0;
    int e = 0;
    assert(a->n == NB201_EDGES);
    for (int j = 1; j <= 3; j++) {
        if (j > 1)
            tmp[len++] = '+';
        tmp[len++] = '|';
        for (int k = 0; k < j; k++, e++) {
            assert(a->ops[e] < NB201_N_OPS);
            /* At most 90 characters in all: tmp cannot overflow. */
            len += (size_t)snprintf(tmp + len, sizeof tmp - len, "%s~%d|",
                                    nb201_op_names[a->ops[e]], k);
        }
    }
    tmp[len] = '\0';
    if (len + 1 > cap)
        return CTNAS_ETOOLARGE;
    memcpy(buf, tmp, len + 1);
    return (int)len;
}

static json_t *nb201_to_json(const struct ctnas_arch *a)
{
    char buf[CTNAS_ENCODING_MAX];
    if (nb201_encode(a, buf, sizeof buf) < 0)
        return NULL;
    return json_string(buf);
}

/* NAS-Bench-201 has no fingerprint of its own: the string is the
 * identity.  md5 of the canonical string gives it the fixed width of
 * nasbench101's hash; equal cells encode, and so hash, the same. */
static void nb201_hash(const struct ctnas_arch *a, char out[CTNAS_HASH_LEN])
{
    char buf[CTNAS_ENCODING_MAX];
    int len = nb201_encode(a, buf, sizeof buf);
    assert(len > 0);
    ctnas_md5_hex(buf, (size_t)len, out);
}

/* Edges as nodes: node 0 the input, node 1 + e edge e, node 7 the output.
 * A none edge carries nothing, so its node goes, and so does every node
 * left off all input->output paths (it cannot affect the output).  The
 * string order is topological, so the survivors keep it. */
static void nb201_to_graph(const struct ctnas_arch *a, struct ctnas_graph *g)
{
    enum { IN = 0, OUT = NB201_EDGES + 1, N = NB201_EDGES + 2 };
    uint8_t full[N][N], alive[N], fwd[N], bwd[N];
    memset(full, 0, sizeof full);
    for (int e = 0; e < NB201_EDGES; e++) {
        alive[1 + e] = a->ops[e] != NB201_NONE;
        if (edge_from[e] == 0)
            full[IN][1 + e] = 1;
        if (edge_to[e] == 3)
            full[1 + e][OUT] = 1;
            /* Edge e feeds edge f when f leaves the node e enters. */
        for (int f = 0; f < NB201_EDGES; f++)
            if (edge_from[f] == edge_to[e])
                full[1 + e][1 + f] = 1;
    }
    alive[IN] = alive[OUT] = 1;

    memset(fwd, 0, sizeof fwd);
    memset(bwd, 0, sizeof bwd);
    fwd[IN] = 1;
    for (int i = 0; i < N; i++)
        if (fwd[i])
            for (int j = i + 1; j < N; j++)
                if (full[i][j] && alive[j])
                    fwd[j] = 1;
    bwd[OUT] = 1;
    for (int j = N - 1; j >= 0; j--)
        if (bwd[j])
            for (int i = 0; i < j; i++)
                if (full[i][j] && alive[i])
                    bwd[i] = 1;

    /* Input and output always stay: with no path they are all there is,
     * and unconnected. */
    int keep[N] = {0}, n = 0;
    for (int i = 0; i < N; i++)
        if (i == IN || i == OUT || (fwd[i] && bwd[i]))
            keep[n++] = i;

    memset(g, 0, sizeof *g);
    g->n = n;
    for (int i = 0; i < n; i++) {
        int u = keep[i];
        g->types[i] = (uint8_t)(u == IN ? NB201_T_INPUT
                                : u == OUT ? NB201_T_OUTPUT
                                : NB201_T_FIRST_OP + a->ops[u - 1]);
        for (int j = 0; j < n; j++)
            g->adj[i][j] = full[u][keep[j]];
    }
}

/* Uniform over all 15,625 cells: every op string is a valid cell (all
 * none gives a graph of input and output alone), so nothing is
 * rejected. */
static void nb201_sample(struct ctnas_rng *rng, struct ctnas_arch *out)
{
    memset(out, 0, sizeof *out);
    out->n = NB201_EDGES;
    for (int e = 0; e < NB201_EDGES; e++)
        out->ops[e] = (uint8_t)ctnas_rng_below(rng, NB201_N_OPS);
}

/* One edge gets a different op.  Unlike nasbench101 no retry is needed:
 * the result is always a valid cell, and always another one. */
static void nb201_mutate(const struct ctnas_arch *in, struct ctnas_rng *rng,
                         struct ctnas_arch *out)
{
    struct ctnas_arch a = *in;
    int e = (int)ctnas_rng_below(rng, NB201_EDGES);
    int op = (int)ctnas_rng_below(rng, NB201_N_OPS - 1);
    if (op >= a.ops[e])
        op++;   /* a different op, uniformly */
    a.ops[e] = (uint8_t)op;
    *out = a;
}

/* The space's entry in GET /v1/spaces. */
static json_t *nb201_describe(void)
{
    const char *const *t = nb201_type_names;
    return json_pack("{s:s, s:[sssss], s:[sssssss], s:i, s:i, s:i, s:i, "
                     "s:[ssssss], s:s, s:s}",
                     "name", "nasbench201",
                     "ops", t[2], t[3], t[4], t[5], t[6],
                     "node_types", t[0], t[1], t[2], t[3], t[4], t[5], t[6],
                     "nodes", 4,
                     "edges", NB201_EDGES,
                     "cells", NB201_CELLS,
                     "max_nodes", NB201_EDGES + 2,
                     "edge_order", "0->1", "0->2", "1->2", "0->3", "1->3",
                     "2->3",
                     "native_format", "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|",
                     "hash", "md5 of the native string");
}

const struct ctnas_space ctnas_space_nb201 = {
    .name = "nasbench201",
    .n_node_types = NB201_N_TYPES,
    .node_type_names = nb201_type_names,
    .max_nodes = NB201_EDGES + 2,
    .parse_json = nb201_parse_json,
    .parse_string = nb201_parse_string,
    .encode = nb201_encode,
    .to_json = nb201_to_json,
    .hash = nb201_hash,
    .to_graph = nb201_to_graph,
    .sample = nb201_sample,
    .mutate = nb201_mutate,
    .describe = nb201_describe,
};
