/*
 * space_nb101.c - the NAS-Bench-101 space ("nasbench101"): op-on-node
 * cells of 2..7 nodes and at most 9 edges.  Owns validation, pruning (as
 * NASBench's ModelSpec does), the NASBench fingerprint, the native text
 * form, sampling and mutation.  Knows nothing of HTTP or the store.
 *
 * The canonical struct ctnas_arch is the pruned spec in the node order it
 * was given: n nodes, adj upper triangular, ops[i] a node type id (the
 * NB101_T_* below), so the arch's ops are also the comparator's node
 * types.  Everything past n is zero, so two archs compare with memcmp.
 *
 * Native text: the compact JSON of the pruned spec, keys in this order,
 *   {"adjacency":[[0,1],[0,0]],"ops":["input","output"]}
 * parse_string reads any JSON text of an equivalent spec.
 */
#include "config.h"
#include "space.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonv.h"
#include "md5.h"

#define NB101_MAX_NODES 7
#define NB101_MAX_EDGES 9

/* Node types; the three real ops follow input and output. */
enum {
    NB101_T_INPUT,
    NB101_T_OUTPUT,
    NB101_T_CONV3X3,
    NB101_T_CONV1X1,
    NB101_T_MAXPOOL,
    NB101_N_TYPES
};
#define NB101_FIRST_OP NB101_T_CONV3X3
#define NB101_N_OPS 3
#define NB101_OPS_LIST "conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3"

/* Never reorder: the ids are the comparator's node types, so a trained
 * model's input features depend on this order (the native text and the
 * store use the names). */
static const char *const nb101_type_names[NB101_N_TYPES] = {
    "input", "output", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3",
};

static int nb101_type_of(const char *name)
{
    for (int t = 0; t < NB101_N_TYPES; t++)
        if (strcmp(nb101_type_names[t], name) == 0)
            return t;
    return -1;
}

/* Read the object form into raw (unpruned, not yet checked for cycles),
 * checking shapes, entries and op names. */
/* Error fields are relative to the architecture ("ops[2]"); arch_json.c
 * prefixes the item's path.  Shapes are checked before entries so the
 * message names the first structural problem. */
static int nb101_read_object(const json_t *obj, struct ctnas_arch *raw,
                             struct ctnas_err *err)
{
    memset(raw, 0, sizeof *raw);
    const json_t *adj = json_object_get(obj, "adjacency");
    const json_t *ops = json_object_get(obj, "ops");

    if (adj == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                             "missing adjacency: a square 0/1 matrix as an "
                             "array of rows");
    if (!json_is_array(adj))
        return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                             "adjacency must be an array of rows of 0/1");
    size_t n = json_array_size(adj);
    if (n > NB101_MAX_NODES)
        return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                             "too many nodes: %zu > %d", n, NB101_MAX_NODES);
    if (n < 2)
        return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                             "too few nodes: %zu < 2 (input and output)", n);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(adj, i);
        if (!json_is_array(row))
            return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                                 "adjacency must be square: adjacency[%zu] "
                                 "is not an array", i);
        if (json_array_size(row) != n)
            return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                                 "adjacency must be square: adjacency[%zu] "
                                 "has %zu entries, expected %zu", i,
                                 json_array_size(row), n);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(adj, i);
        for (size_t j = 0; j < n; j++) {
            const json_t *v = json_array_get(row, j);
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (x != 0 && x != 1)
                return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                                     "adjacency entries must be 0 or 1, "
                                     "but adjacency[%zu][%zu] is not", i, j);
            raw->adj[i][j] = (uint8_t)x;
        }
    }

    if (ops == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "ops",
                             "missing ops: an array of op names");
    if (!json_is_array(ops))
        return ctnas_err_set(err, CTNAS_EINVAL, "ops",
                             "ops must be an array of op names");
    if (json_array_size(ops) != n)
        return ctnas_err_set(err, CTNAS_EINVAL, "ops",
                             "ops has %zu entries but adjacency is %zux%zu",
                             json_array_size(ops), n, n);
    for (size_t i = 0; i < n; i++) {
        char field[32];
        snprintf(field, sizeof field, "ops[%zu]", i);
        const char *s = json_string_value(json_array_get(ops, i));
        if (s == NULL)
            return ctnas_err_set(err, CTNAS_EINVAL, field,
                                 "%s must be an op name string", field);
        int t = nb101_type_of(s);
        if (i == 0 && t != NB101_T_INPUT)
            return ctnas_err_set(err, CTNAS_EINVAL, field,
                                 "first op must be 'input', got '%.40s'", s);
        if (i == n - 1 && t != NB101_T_OUTPUT)
            return ctnas_err_set(err, CTNAS_EINVAL, field,
                                 "last op must be 'output', got '%.40s'", s);
        if (i > 0 && i < n - 1) {
            if (t == NB101_T_INPUT)
                return ctnas_err_set(err, CTNAS_EINVAL, field,
                                     "'input' may only be the first op");
            if (t == NB101_T_OUTPUT)
                return ctnas_err_set(err, CTNAS_EINVAL, field,
                                     "'output' may only be the last op");
            if (t < 0)
                return ctnas_err_set(err, CTNAS_EINVAL, field,
                                     "unknown op '%.40s'; expected one of "
                                     NB101_OPS_LIST, s);
        }
        raw->ops[i] = (uint8_t)t;
    }
    raw->n = (int)n;
    return 0;
}

/* From a raw spec with valid shape and ops: reject cycles, prune nodes off
 * every input->output path, check the edge limit on what remains. */
static int nb101_canon(const struct ctnas_arch *raw, struct ctnas_arch *out,
                       struct ctnas_err *err)
{
    int n = raw->n;
    /* Only i < j edges are allowed: that both fixes a topological order
     * and makes cycles impossible, so a lower entry is "the cycle rule". */
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            if (raw->adj[i][j])
                return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                                     "cycle: adjacency must be upper "
                                     "triangular (edges i -> j with i < j "
                                     "only), but adjacency[%d][%d] is 1",
                                     i, j);

    /* Reachability in one pass each way: the order is topological. */
    uint8_t from_in[NB101_MAX_NODES] = {0}, to_out[NB101_MAX_NODES] = {0};
    from_in[0] = 1;
    for (int i = 0; i < n; i++)
        if (from_in[i])
            for (int j = i + 1; j < n; j++)
                if (raw->adj[i][j])
                    from_in[j] = 1;
    to_out[n - 1] = 1;
    for (int j = n - 1; j >= 0; j--)
        if (to_out[j])
            for (int i = 0; i < j; i++)
                if (raw->adj[i][j])
                    to_out[i] = 1;
    if (!from_in[n - 1])
        return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                             "no path from input to output");

    /* Specs that differ only in nodes off every path prune to the same
     * arch, hence the same fingerprint and the same catalogue row. */
    int keep[NB101_MAX_NODES], m = 0, raw_edges = 0;
    for (int i = 0; i < n; i++)
        if (from_in[i] && to_out[i])
            keep[m++] = i;
    struct ctnas_arch a;
    memset(&a, 0, sizeof a);
    a.n = m;
    int edges = 0;
    for (int i = 0; i < m; i++) {
        a.ops[i] = raw->ops[keep[i]];
        for (int j = 0; j < m; j++) {
            a.adj[i][j] = raw->adj[keep[i]][keep[j]];
            edges += a.adj[i][j];
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            raw_edges += raw->adj[i][j];
    /* NASBench counts edges after pruning; say so when it matters. */
    if (edges > NB101_MAX_EDGES)
        return ctnas_err_set(err, CTNAS_EINVAL, "adjacency",
                             "too many edges: %d > %d%s", edges,
                             NB101_MAX_EDGES,
                             edges != raw_edges ? " (after pruning nodes "
                             "off every input->output path)" : "");
    *out = a;
    return 0;
}

/* The cell of an object; other fields are not looked at. */
static int nb101_read_cell(const json_t *obj, struct ctnas_arch *out,
                           struct ctnas_err *err)
{
    struct ctnas_arch raw;
    int rc = nb101_read_object(obj, &raw, err);
    if (rc < 0)
        return rc;
    return nb101_canon(&raw, out, err);
}

/* An object of a request: only the cell's fields, so a typo is not
 * ignored.  (The text form, which data files and tools write, may carry
 * more: nb101_parse_string reads the cell alone.) */
static int nb101_parse_object(const json_t *obj, struct ctnas_arch *out,
                              struct ctnas_err *err)
{
    static const char *const keys[] = {"adjacency", "ops", NULL};
    int rc = ctnas_jsonv_only(obj, "", keys, err);
    return rc < 0 ? rc : nb101_read_cell(obj, out, err);
}

/* Skip the literal lit at *p: 1 and *p past it, or 0. */
static int skip(const char **p, const char *lit)
{
    size_t k = strlen(lit);
    if (strncmp(*p, lit, k) != 0)
        return 0;
    *p += k;
    return 1;
}

/* The exact text nb101_encode writes (what the store holds), read into
 * raw with the checks of nb101_read_object, without building a JSON tree:
 * 0, or -1 for anything else, which the JSON path then reads (or refuses,
 * with its messages).  About ten times faster, which tells when tens of
 * thousands of stored cells are read at once (a training set, a
 * warm-up). */
static int nb101_scan_canonical(const char *s, struct ctnas_arch *raw)
{
    const char *p = s;
    int n = 0;
    memset(raw, 0, sizeof *raw);
    if (!skip(&p, "{\"adjacency\":["))
        return -1;
    for (int i = 0; i == 0 || i < n; i++) {
        if ((i > 0 && !skip(&p, ",")) || !skip(&p, "["))
            return -1;
        int j = 0;
        for (;;) {
            if (j == NB101_MAX_NODES || (*p != '0' && *p != '1'))
                return -1;
            raw->adj[i][j++] = (uint8_t)(*p++ - '0');
            if (*p != ',')
                break;
            p++;
        }
        if (i == 0)
            n = j;
        if (j != n || !skip(&p, "]"))
            return -1;
    }
    if (n < 2 || !skip(&p, "],\"ops\":["))
        return -1;
    for (int i = 0; i < n; i++) {
        int t = -1;
        if ((i > 0 && !skip(&p, ",")) || !skip(&p, "\""))
            return -1;
        for (int k = 0; k < NB101_N_TYPES && t < 0; k++)
            if (skip(&p, nb101_type_names[k]))
                t = k;
        if (t < 0 || !skip(&p, "\"") ||
            (i == 0) != (t == NB101_T_INPUT) ||
            (i == n - 1) != (t == NB101_T_OUTPUT))
            return -1;
        raw->ops[i] = (uint8_t)t;
    }
    if (!skip(&p, "]}") || *p != '\0')
        return -1;
    raw->n = n;
    return 0;
}

static int nb101_parse_string(const char *s, struct ctnas_arch *out,
                              struct ctnas_err *err)
{
    if (s == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "", "missing architecture");
    struct ctnas_arch raw;
    if (nb101_scan_canonical(s, &raw) == 0)
        return nb101_canon(&raw, out, err);
    json_error_t jerr;
    int oom;
    json_t *obj = ctnas_jsonv_load(s, strlen(s), 0, &jerr, &oom);
    if (obj == NULL) {
        /* Kept apart so a full heap answers 500, not a client's 400. */
        if (oom)
            return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        return ctnas_err_set(err, CTNAS_EINVAL, "",
                             "a nasbench101 cell string must be JSON "
                             "text: %.80s (column %d)", jerr.text,
                             jerr.column);
    }
    int rc;
    if (!json_is_object(obj))
        rc = ctnas_err_set(err, CTNAS_EINVAL, "",
                           "a nasbench101 cell string must hold a JSON "
                           "object {\"adjacency\": ..., \"ops\": ...}");
    else
        rc = nb101_read_cell(obj, out, err);
    json_decref(obj);
    return rc;
}

static int nb101_parse_json(const json_t *arch, struct ctnas_arch *out,
                            struct ctnas_err *err)
{
    if (json_is_string(arch))
        return nb101_parse_string(json_string_value(arch), out, err);
    if (json_is_object(arch))
        return nb101_parse_object(arch, out, err);
    return ctnas_err_set(err, CTNAS_EINVAL, "",
                         "a nasbench101 cell is an object {\"adjacency\": "
                         "[[0/1...]...], \"ops\": [...]} or its JSON text "
                         "as a string");
}

/* Append to a fixed buffer; the caller checks *len < cap at the end. */
static void put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t k = strlen(s);
    if (*len + k < cap)
        memcpy(buf + *len, s, k + 1);
    *len += k;
}

static int nb101_encode(const struct ctnas_arch *a, char *buf, size_t cap)
{
    assert(a->n >= 2 && a->n <= NB101_MAX_NODES);
    /* Built in tmp, which the largest cell fits (asserted), so buf is
     * left untouched on CTNAS_ETOOLARGE.  Returns the length. */
    char tmp[CTNAS_ENCODING_MAX];
    size_t len = 0;
    tmp[0] = '\0';
    put(tmp, sizeof tmp, &len, "{\"adjacency\":[");
    for (int i = 0; i < a->n; i++) {
        put(tmp, sizeof tmp, &len, i ? ",[" : "[");
        for (int j = 0; j < a->n; j++) {
            put(tmp, sizeof tmp, &len, j ? "," : "");
            put(tmp, sizeof tmp, &len, a->adj[i][j] ? "1" : "0");
        }
        put(tmp, sizeof tmp, &len, "]");
    }
    put(tmp, sizeof tmp, &len, "],\"ops\":[");
    for (int i = 0; i < a->n; i++) {
        assert(a->ops[i] < NB101_N_TYPES);
        put(tmp, sizeof tmp, &len, i ? ",\"" : "\"");
        put(tmp, sizeof tmp, &len, nb101_type_names[a->ops[i]]);
        put(tmp, sizeof tmp, &len, "\"");
    }
    put(tmp, sizeof tmp, &len, "]}");
    assert(len < sizeof tmp);
    if (len + 1 > cap)
        return CTNAS_ETOOLARGE;
    memcpy(buf, tmp, len + 1);
    return (int)len;
}

static json_t *nb101_to_json(const struct ctnas_arch *a)
{
    json_t *obj = json_object();
    json_t *adj = json_array();
    json_t *ops = json_array();
    if (obj == NULL || adj == NULL || ops == NULL)
        goto fail;
    for (int i = 0; i < a->n; i++) {
        json_t *row = json_array();
        if (json_array_append_new(adj, row) < 0)
            goto fail;
        for (int j = 0; j < a->n; j++)
            if (json_array_append_new(row, json_integer(a->adj[i][j])) < 0)
                goto fail;
        if (json_array_append_new(ops,
                json_string(nb101_type_names[a->ops[i]])) < 0)
            goto fail;
    }
    /* set_new steals even on failure, so nothing leaks past here. */
    if (json_object_set_new(obj, "adjacency", adj) < 0) {
        adj = NULL;
        goto fail;
    }
    if (json_object_set_new(obj, "ops", ops) < 0) {
        ops = NULL;
        goto fail;
    }
    return obj;
fail:
    json_decref(ops);
    json_decref(adj);
    json_decref(obj);
    return NULL;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int cmp_hash(const void *x, const void *y)
{
    return strcmp(x, y);
}

static int cmp_int_asc(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* The NASBench fingerprint (graph_util.hash_module).  Works on any
 * adjacency, triangular or not: only the graph matters. */
static void nb101_hash(const struct ctnas_arch *a, char out[CTNAS_HASH_LEN])
{
    int n = a->n;
    char h[NB101_MAX_NODES][CTNAS_HASH_LEN];
    char nh[NB101_MAX_NODES][CTNAS_HASH_LEN];
    char buf[640];

    assert(n >= 1 && n <= NB101_MAX_NODES);
    for (int v = 0; v < n; v++) {
        int in = 0, outd = 0;
        for (int w = 0; w < n; w++) {
            in += a->adj[w][v];
            outd += a->adj[v][w];
        }
        int t = a->ops[v];
        /* The labels NASBench gives hash_module (-1 input, -2 output,
         * else the op's index), so the fingerprint equals the dataset's
         * module hash and the importer can check nb101_hash. */
        int label = t == NB101_T_INPUT ? -1
                    : t == NB101_T_OUTPUT ? -2 : t - NB101_FIRST_OP;
        /* Python's str() of a tuple of ints. */
        int k = snprintf(buf, sizeof buf, "(%d, %d, %d)", outd, in, label);
        ctnas_md5_hex(buf, (size_t)k, h[v]);
    }
    /* n rounds of neighbourhood refinement, as hash_module does: each
     * node's hash absorbs its sorted in- and out-neighbours' hashes.
     * buf (640) holds 7 + 7 hashes, two bars and the node's own. */
    for (int it = 0; it < n; it++) {
        for (int v = 0; v < n; v++) {
            const char *nb[NB101_MAX_NODES] = {NULL};
            size_t len = 0;
            int k = 0;
            for (int w = 0; w < n; w++)
                if (a->adj[w][v])
                    nb[k++] = h[w];
            qsort(nb, (size_t)k, sizeof nb[0], cmp_str);
            for (int i = 0; i < k; i++)
                put(buf, sizeof buf, &len, nb[i]);
            put(buf, sizeof buf, &len, "|");
            k = 0;
            for (int w = 0; w < n; w++)
                if (a->adj[v][w])
                    nb[k++] = h[w];
            qsort(nb, (size_t)k, sizeof nb[0], cmp_str);
            for (int i = 0; i < k; i++)
                put(buf, sizeof buf, &len, nb[i]);
            put(buf, sizeof buf, &len, "|");
            put(buf, sizeof buf, &len, h[v]);
            assert(len < sizeof buf);
            ctnas_md5_hex(buf, len, nh[v]);
        }
        memcpy(h, nh, sizeof h);
    }
    /* Python's str() of a sorted list of str: ['a', 'b']. */
    qsort(h, (size_t)n, sizeof h[0], cmp_hash);
    size_t len = 0;
    buf[0] = '\0';
    put(buf, sizeof buf, &len, "[");
    for (int v = 0; v < n; v++) {
        put(buf, sizeof buf, &len, v ? ", '" : "'");
        put(buf, sizeof buf, &len, h[v]);
        put(buf, sizeof buf, &len, "'");
    }
    put(buf, sizeof buf, &len, "]");
    assert(len < sizeof buf);
    ctnas_md5_hex(buf, len, out);
}

/* A cell already is the comparator's graph: ops are the node types. */
static void nb101_to_graph(const struct ctnas_arch *a, struct ctnas_graph *g)
{
    memset(g, 0, sizeof *g);
    g->n = a->n;
    for (int i = 0; i < a->n; i++) {
        g->types[i] = a->ops[i];
        for (int j = 0; j < a->n; j++)
            g->adj[i][j] = a->adj[i][j];
    }
}

/* Labelled n-node specs (upper-triangular adjacency times an op for each
 * of the n-2 middle nodes) that are valid, have at most 9 edges and keep
 * all n nodes when pruned, by exhaustive enumeration: 1, 2, 10, 121, 1545
 * and 4793 graphs for n = 2..7, times 3^(n-2) op choices.  n = 5..7 are
 * the usual 3,267 / 125,145 / 1,164,699; n = 2..4 give 1 + 6 + 90 = 97
 * (not the 96 sometimes quoted). */
static const uint32_t nb101_cells_by_n[NB101_MAX_NODES + 1] = {
    0, 0, 1, 6, 90, 3267, 125145, 1164699,
};

static int popcount32(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (int)((x * 0x01010101u) >> 24);
}

/* Uniform over labelled valid cells: n in proportion to the counts above,
 * then an n-node spec by rejection.  Bit b of a draw is the b-th pair
 * i < j in row-major order.  Ordering is topological, so every node is on
 * an input->output path (nothing would be pruned) exactly when each row
 * but the output's and each column but the input's has a 1: following
 * in-edges back from any node ends at the input, out-edges at the output.
 * Node 1 can only be fed by the input and node n-2 only feed the output,
 * so every kept spec has edges 0->1 and (n-2)->(n-1); setting those two
 * bits in each draw conditions on them exactly and cuts the rejections for
 * n = 7 from ~437 draws per kept spec to ~109 (three draws per 64-bit
 * word). */
static void nb101_sample(struct ctnas_rng *rng, struct ctnas_arch *out)
{
    uint32_t total = 0;
    for (int k = 2; k <= NB101_MAX_NODES; k++)
        total += nb101_cells_by_n[k];
    uint32_t r = ctnas_rng_below(rng, total);
    int n = 2;
    while (r >= nb101_cells_by_n[n]) {
        r -= nb101_cells_by_n[n];
        n++;
    }

    uint32_t row[NB101_MAX_NODES] = {0}, col[NB101_MAX_NODES] = {0};
    int nbits = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            row[i] |= UINT32_C(1) << nbits;
            col[j] |= UINT32_C(1) << nbits;
            nbits++;
        }
    const uint32_t mask = (UINT32_C(1) << nbits) - 1;
    const uint32_t forced = (row[0] & col[1]) | (row[n - 2] & col[n - 1]);
    /* nbits <= 21, so one 64-bit draw yields at least three candidate
     * specs.  The ops are drawn afterwards, uniformly and independently,
     * which the 3^(n-2) factor in the counts accounts for. */
    const int per_word = 64 / nbits;
    /* What the forced bits leave to check: rows 1..n-3, columns 2..n-2. */
    uint32_t need[2 * NB101_MAX_NODES];
    int n_need = 0;
    for (int i = 1; i < n - 2; i++) {
        need[n_need++] = row[i];
        need[n_need++] = col[i + 1];
    }

    uint32_t m = 0;
    for (int found = 0; !found;) {
        uint64_t word = ctnas_rng_next(rng);
        for (int c = 0; c < per_word && !found; c++, word >>= nbits) {
            m = ((uint32_t)word & mask) | forced;
            if (popcount32(m) > NB101_MAX_EDGES)
                continue;
            int bad = 0;
            for (int k = 0; k < n_need; k++)
                bad |= (m & need[k]) == 0;
            found = !bad;
        }
    }

    memset(out, 0, sizeof *out);
    out->n = n;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            out->adj[i][j] = (uint8_t)((m & row[i] & col[j]) != 0);
    out->ops[0] = NB101_T_INPUT;
    out->ops[n - 1] = NB101_T_OUTPUT;
    for (int i = 1; i < n - 1; i++)
        out->ops[i] = (uint8_t)(NB101_FIRST_OP +
                                ctnas_rng_below(rng, NB101_N_OPS));
}

/* Place the pruned cell in 7 slots, its intermediate nodes at random
 * slots in order and unconnected random-op nodes in the others, so one
 * edge flip can also grow the cell. */
static void nb101_embed(const struct ctnas_arch *in, struct ctnas_rng *rng,
                        struct ctnas_arch *raw)
{
    const int slots = NB101_MAX_NODES - 2;
    int pos[NB101_MAX_NODES - 2], map[NB101_MAX_NODES];
    for (int i = 0; i < slots; i++)
        pos[i] = i + 1;
    ctnas_rng_shuffle(rng, pos, slots);
    int m = in->n - 2;
    /* Sorted so the cell's nodes keep their order and the adjacency
     * stays upper triangular. */
    qsort(pos, (size_t)m, sizeof pos[0], cmp_int_asc);
    memset(raw, 0, sizeof *raw);
    raw->n = NB101_MAX_NODES;
    for (int i = 1; i < NB101_MAX_NODES - 1; i++)
        raw->ops[i] = (uint8_t)(NB101_FIRST_OP +
                                ctnas_rng_below(rng, NB101_N_OPS));
    map[0] = 0;
    for (int i = 0; i < m; i++)
        map[i + 1] = pos[i];
    map[in->n - 1] = NB101_MAX_NODES - 1;
    for (int i = 0; i < in->n; i++) {
        raw->ops[map[i]] = in->ops[i];
        for (int j = 0; j < in->n; j++)
            raw->adj[map[i]][map[j]] = in->adj[i][j];
    }
}

/* One random neighbour: an edge flip or an op change (half each) on a
 * random 7-slot embedding, retried until the result is valid and its
 * fingerprint differs from the input's; a flip among padding nodes can
 * prune back to the same cell.  Some neighbour always exists, so the
 * loop ends. */
static void nb101_mutate(const struct ctnas_arch *in, struct ctnas_rng *rng,
                         struct ctnas_arch *out)
{
    char h_in[CTNAS_HASH_LEN], h_out[CTNAS_HASH_LEN];
    const struct ctnas_arch orig = *in;     /* out may alias in */
    nb101_hash(&orig, h_in);
    for (;;) {
        struct ctnas_arch raw;
        nb101_embed(&orig, rng, &raw);
        if (orig.n == 2) {
            /* input -> output alone has no one-flip neighbour: every
             * single new edge dangles.  Grow it by one node instead. */
            int k = 1 + (int)ctnas_rng_below(rng, NB101_MAX_NODES - 2);
            raw.adj[0][k] = 1;
            raw.adj[k][NB101_MAX_NODES - 1] = 1;
            raw.adj[0][NB101_MAX_NODES - 1] =
                (uint8_t)ctnas_rng_below(rng, 2);
        } else if (ctnas_rng_below(rng, 2) == 0) {
            /* One of the 21 pairs i < j, uniformly. */
            int r = (int)ctnas_rng_below(rng, NB101_MAX_NODES *
                                         (NB101_MAX_NODES - 1) / 2);
            int i = 0;
            while (r >= NB101_MAX_NODES - 1 - i) {
                r -= NB101_MAX_NODES - 1 - i;
                i++;
            }
            raw.adj[i][i + 1 + r] ^= 1;
        } else {
            int v = 1 + (int)ctnas_rng_below(rng, NB101_MAX_NODES - 2);
            int t = NB101_FIRST_OP + (int)ctnas_rng_below(rng,
                                                          NB101_N_OPS - 1);
            if (t >= raw.ops[v])
                t++;    /* a different op, uniformly */
            raw.ops[v] = (uint8_t)t;
        }
        if (nb101_canon(&raw, out, NULL) < 0)
            continue;
        nb101_hash(out, h_out);
        if (strcmp(h_in, h_out) != 0)
            return;
    }
}

/* The space's entry in GET /v1/spaces. */
static json_t *nb101_describe(void)
{
    return json_pack("{s:s, s:[sss], s:[sssss], s:i, s:i, s:i, s:s, s:s}",
                     "name", "nasbench101",
                     "ops", nb101_type_names[2], nb101_type_names[3],
                     nb101_type_names[4],
                     "node_types", nb101_type_names[0], nb101_type_names[1],
                     nb101_type_names[2], nb101_type_names[3],
                     nb101_type_names[4],
                     "min_nodes", 2,
                     "max_nodes", NB101_MAX_NODES,
                     "max_edges", NB101_MAX_EDGES,
                     "native_format",
                     "compact JSON of the pruned cell: {\"adjacency\":"
                     "[[0,1],[0,0]],\"ops\":[\"input\",\"output\"]}",
                     "hash", "NAS-Bench-101 fingerprint");
}

const struct ctnas_space ctnas_space_nb101 = {
    .name = "nasbench101",
    .n_node_types = NB101_N_TYPES,
    .node_type_names = nb101_type_names,
    .max_nodes = NB101_MAX_NODES,
    .parse_json = nb101_parse_json,
    .parse_string = nb101_parse_string,
    .encode = nb101_encode,
    .to_json = nb101_to_json,
    .hash = nb101_hash,
    .to_graph = nb101_to_graph,
    .sample = nb101_sample,
    .mutate = nb101_mutate,
    .describe = nb101_describe,
};
