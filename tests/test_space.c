/*
 * test_space.c - the search spaces: MD5, NB101 validation, pruning, the
 * NASBench fingerprint (against published hashes when ../shared/data is
 * there), sampling and mutation; NB201 parsing, hashing, graphs and
 * sampling.
 */
#include "config.h"
#include "space.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md5.h"
#include "mem.h"
#include "test.h"

#define NB101 (&ctnas_space_nb101)
#define NB201 (&ctnas_space_nb201)

/* ---- helpers ---- */

/* Parse JSON text and hand it to sp->parse_json. */
static int parse_text(const struct ctnas_space *sp, const char *text,
                      struct ctnas_arch *a, struct ctnas_err *err)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        fprintf(stderr, "# bad test JSON: %s: %s\n", text, jerr.text);
        abort();
    }
    ctnas_err_clear(err);
    int rc = sp->parse_json(j, a, err);
    json_decref(j);
    return rc;
}

static void hash_of(const struct ctnas_space *sp, const struct ctnas_arch *a,
                    char out[CTNAS_HASH_LEN])
{
    sp->hash(a, out);
}

static int edge_count(const struct ctnas_arch *a)
{
    int k = 0;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < a->n; j++)
            k += a->adj[i][j];
    return k;
}

/* Encode, parse back, compare: the store's round trip. */
static int roundtrips(const struct ctnas_space *sp, const struct ctnas_arch *a)
{
    char buf[CTNAS_ENCODING_MAX], buf2[CTNAS_ENCODING_MAX];
    struct ctnas_arch b;
    struct ctnas_err err;
    if (sp->encode(a, buf, sizeof buf) < 0)
        return 0;
    if (sp->parse_string(buf, &b, &err) < 0)
        return 0;
    if (memcmp(a, &b, sizeof b) != 0)
        return 0;
    if (sp->encode(&b, buf2, sizeof buf2) < 0)
        return 0;
    return strcmp(buf, buf2) == 0;
}

/* ---- md5 and the table ---- */

static void test_md5_vectors(void)
{
    static const struct { const char *in, *md5; } v[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890123456789012345678901234"
         "5678901234567890", "57edf4a22be3c955ac49da2e2107b67a"},
        /* What the fingerprint hashes first (Python's hashlib). */
        {"(2, 0, -1)", "ad8d031e62766066a47673a9cd26bfb5"},
    };
    char out[33];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ctnas_md5_hex(v[i].in, strlen(v[i].in), out);
        ASSERT_STREQ(out, v[i].md5);
    }
    /* Padding boundaries: 55/56 and 63/64/65 bytes, two-block tails. */
    static const struct { int n; const char *md5; } a[] = {
        {55, "ef1772b6dff9a122358552954ad0df65"},
        {56, "3b0c8ac703f828b04c6c197006d17218"},
        {63, "b06521f39153d618550606be297466d5"},
        {64, "014842d480b571495a4a0363793f7367"},
        {65, "c743a45e0d2e6a95cb859adae0248435"},
        {119, "8a7bd0732ed6a28ce75f6dabc90e1613"},
        {120, "5f61c0ccad4cac44c75ff505e1f1e537"},
        {128, "e510683b3f5ffe4093d021808bc6ff70"},
    };
    char buf[128];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        ctnas_md5_hex(buf, (size_t)a[i].n, out);
        ASSERT_STREQ(out, a[i].md5);
    }
}

static void test_space_table(void)
{
    ASSERT(ctnas_spaces[0] == NB101);
    ASSERT(ctnas_spaces[1] == NB201);
    ASSERT(ctnas_spaces[2] == NULL);
    ASSERT(ctnas_space_find("nasbench101") == NB101);
    ASSERT(ctnas_space_find("nasbench201") == NB201);
    ASSERT(ctnas_space_find("nasbench301") == NULL);
    ASSERT(ctnas_space_find(NULL) == NULL);
    ASSERT_EQ(NB101->n_node_types, 5);
    ASSERT_EQ(NB201->n_node_types, 7);
    ASSERT(NB101->max_nodes <= CTNAS_GRAPH_MAX);
    ASSERT(NB201->max_nodes <= CTNAS_GRAPH_MAX);
    ASSERT_STREQ(NB201->node_type_names[2], "none");
    for (int i = 0; ctnas_spaces[i] != NULL; i++) {
        json_t *d = ctnas_spaces[i]->describe();
        ASSERT(d != NULL);
        ASSERT_STREQ(json_string_value(json_object_get(d, "name")),
                     ctnas_spaces[i]->name);
        ASSERT(json_array_size(json_object_get(d, "node_types")) ==
               (size_t)ctnas_spaces[i]->n_node_types);
        ASSERT(json_is_string(json_object_get(d, "native_format")));
        json_decref(d);
    }
}

/* ---- NAS-Bench-101 ---- */

/* The first line of nb101_val.jsonl, with its published fingerprint. */
#define NB101_CELL1                                                     \
    "{\"adjacency\":[[0,1,0,0,1,0,0],[0,0,1,1,0,1,0],[0,0,0,0,0,0,1],"  \
    "[0,0,0,0,0,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]],"  \
    "\"ops\":[\"input\",\"conv3x3-bn-relu\",\"conv1x1-bn-relu\","         \
    "\"maxpool3x3\",\"conv1x1-bn-relu\",\"conv1x1-bn-relu\","            \
    "\"output\"]}"
#define NB101_CELL1_HASH "174cd6d2faac5a7a0a968d4efd1c8c5a"

static void test_nb101_valid(void)
{
    struct ctnas_arch a;
    struct ctnas_err err;
    char h[CTNAS_HASH_LEN], buf[CTNAS_ENCODING_MAX];

    ASSERT_EQ(parse_text(NB101, NB101_CELL1, &a, &err), 0);
    ASSERT_EQ(a.n, 7);
    ASSERT_EQ(edge_count(&a), 9);
    hash_of(NB101, &a, h);
    ASSERT_STREQ(h, NB101_CELL1_HASH);
    /* The native text is exactly the compact JSON. */
    ASSERT_EQ(NB101->encode(&a, buf, sizeof buf), (int)strlen(NB101_CELL1));
    ASSERT_STREQ(buf, NB101_CELL1);

    /* Smallest cell. */
    ASSERT_EQ(parse_text(NB101, "{\"adjacency\":[[0,1],[0,0]],"
                         "\"ops\":[\"input\",\"output\"]}", &a, &err), 0);
    ASSERT_EQ(a.n, 2);
    ASSERT_EQ(a.adj[0][1], 1);
    /* An object takes only the cell's fields: a typo is named. */
    ASSERT_EQ(parse_text(NB101, "{\"adjacency\":[[0,1],[0,0]],\"x\":1,"
                         "\"ops\":[\"input\",\"output\"]}", &a, &err),
              CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "x");
    /* The text form (data files, tools) may carry more: the cell is read
     * from it. */
    ASSERT_EQ(NB101->parse_string("{\"adjacency\":[[0,1],[0,0]],\"x\":1,"
                                  "\"ops\":[\"input\",\"output\"]}", &a,
                                  &err), 0);
    ASSERT_EQ(a.n, 2);
}

static void test_nb101_invalid(void)
{
    static const struct {
        const char *json, *field, *msg;
    } c[] = {
        /* shapes */
        {"{\"ops\":[\"input\",\"output\"]}", "adjacency", "missing"},
        {"{\"adjacency\":[[0,1],[0,0]]}", "ops", "missing"},
        {"{\"adjacency\":3,\"ops\":[\"input\",\"output\"]}", "adjacency",
         "array of rows"},
        {"{\"adjacency\":[[0,1],[0]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "adjacency must be square"},
        {"{\"adjacency\":[[0,1,0],[0,0,1]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "adjacency must be square"},
        {"{\"adjacency\":[[0,1],5],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "adjacency must be square"},
        {"{\"adjacency\":[[0]],\"ops\":[\"input\"]}", "adjacency",
         "too few nodes: 1 < 2"},
        {"{\"adjacency\":[],\"ops\":[]}", "adjacency", "too few nodes"},
        {"{\"adjacency\":[[0,1,0,0,0,0,0,0],[0,0,1,0,0,0,0,0],"
         "[0,0,0,1,0,0,0,0],[0,0,0,0,1,0,0,0],[0,0,0,0,0,1,0,0],"
         "[0,0,0,0,0,0,1,0],[0,0,0,0,0,0,0,1],[0,0,0,0,0,0,0,0]],"
         "\"ops\":[\"input\",\"maxpool3x3\",\"maxpool3x3\",\"maxpool3x3\","
         "\"maxpool3x3\",\"maxpool3x3\",\"maxpool3x3\",\"output\"]}",
         "adjacency", "too many nodes: 8 > 7"},
        {"{\"adjacency\":[[0,1],[0,0]],\"ops\":[\"input\",\"maxpool3x3\","
         "\"output\"]}", "ops", "ops has 3 entries but adjacency is 2x2"},
        {"{\"adjacency\":[[0,1],[0,0]],\"ops\":\"input\"}", "ops",
         "array of op names"},
        /* entries */
        {"{\"adjacency\":[[0,2],[0,0]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "0 or 1, but adjacency[0][1]"},
        {"{\"adjacency\":[[0,\"1\"],[0,0]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "0 or 1"},
        {"{\"adjacency\":[[0,true],[0,0]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "0 or 1"},
        {"{\"adjacency\":[[0,1],[-1,0]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "0 or 1, but adjacency[1][0]"},
        /* ops */
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],\"ops\":[\"input\","
         "\"conv5x5\",\"output\"]}", "ops[1]",
         "unknown op 'conv5x5'; expected one of conv3x3-bn-relu, "
         "conv1x1-bn-relu, maxpool3x3"},
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],\"ops\":[\"input\","
         "7,\"output\"]}", "ops[1]", "string"},
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],\"ops\":[\"maxpool3x3\","
         "\"maxpool3x3\",\"output\"]}", "ops[0]",
         "first op must be 'input', got 'maxpool3x3'"},
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],\"ops\":[\"input\","
         "\"maxpool3x3\",\"maxpool3x3\"]}", "ops[2]",
         "last op must be 'output'"},
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],\"ops\":[\"input\","
         "\"input\",\"output\"]}", "ops[1]", "'input' may only be the first"},
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],\"ops\":[\"input\","
         "\"output\",\"output\"]}", "ops[1]", "'output' may only be the last"},
        /* graph rules */
        {"{\"adjacency\":[[0,1,0],[0,0,1],[0,1,0]],\"ops\":[\"input\","
         "\"maxpool3x3\",\"output\"]}", "adjacency",
         "cycle: adjacency must be upper triangular"},
        {"{\"adjacency\":[[0,1,0],[0,1,1],[0,0,0]],\"ops\":[\"input\","
         "\"maxpool3x3\",\"output\"]}", "adjacency",
         "but adjacency[1][1] is 1"},
        {"{\"adjacency\":[[0,1,0],[0,0,0],[0,0,0]],\"ops\":[\"input\","
         "\"maxpool3x3\",\"output\"]}", "adjacency",
         "no path from input to output"},
        {"{\"adjacency\":[[0,0],[0,0]],\"ops\":[\"input\",\"output\"]}",
         "adjacency", "no path from input to output"},
        {"{\"adjacency\":[[0,1,1,1,1,1,1],[0,0,1,1,1,1,1],[0,0,0,1,1,1,1],"
         "[0,0,0,0,1,1,1],[0,0,0,0,0,1,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]],"
         "\"ops\":[\"input\",\"conv3x3-bn-relu\",\"conv3x3-bn-relu\","
         "\"conv3x3-bn-relu\",\"conv3x3-bn-relu\",\"conv3x3-bn-relu\","
         "\"output\"]}", "adjacency", "too many edges: 21 > 9"},
        /* 10 edges, all on paths */
        {"{\"adjacency\":[[0,1,1,0,0,0,0],[0,0,1,0,0,0,1],[0,0,0,1,0,0,1],"
         "[0,0,0,0,1,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]],"
         "\"ops\":[\"input\",\"conv3x3-bn-relu\",\"conv3x3-bn-relu\","
         "\"conv3x3-bn-relu\",\"conv3x3-bn-relu\",\"conv3x3-bn-relu\","
         "\"output\"]}", "adjacency", "too many edges: 10 > 9"},
        /* not a cell at all */
        {"42", "", "nasbench101 cell"},
        {"\"not json\"", "", "JSON"},
        {"\"[1, 2]\"", "", "JSON object"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        struct ctnas_arch a;
        struct ctnas_err err;
        int rc = parse_text(NB101, c[i].json, &a, &err);
        ASSERT_MSG(rc == CTNAS_EINVAL, "case %zu accepted: %s", i, c[i].json);
        ASSERT_EQ(err.code, CTNAS_EINVAL);
        ASSERT_MSG(strcmp(err.field, c[i].field) == 0,
                   "case %zu: field \"%s\", expected \"%s\" (%s)", i,
                   err.field, c[i].field, err.msg);
        ASSERT_MSG(strstr(err.msg, c[i].msg) != NULL,
                   "case %zu: msg \"%s\" lacks \"%s\"", i, err.msg,
                   c[i].msg);
    }
}

static void test_nb101_roundtrip(void)
{
    struct ctnas_arch a, b;
    struct ctnas_err err;
    char buf[CTNAS_ENCODING_MAX];

    ASSERT_EQ(parse_text(NB101, NB101_CELL1, &a, &err), 0);
    ASSERT(roundtrips(NB101, &a));
    /* parse_string takes any equivalent JSON text. */
    ASSERT_EQ(NB101->parse_string(
                  " { \"ops\" : [\"input\", \"maxpool3x3\", \"output\"],\n"
                  "   \"adjacency\": [[0, 1, 1], [0, 0, 1], [0, 0, 0]] } ",
                  &b, &err), 0);
    ASSERT_EQ(NB101->encode(&b, buf, sizeof buf), 77);
    ASSERT_STREQ(buf, "{\"adjacency\":[[0,1,1],[0,0,1],[0,0,0]],"
                      "\"ops\":[\"input\",\"maxpool3x3\",\"output\"]}");
    /* parse_json takes the native text as a JSON string. */
    json_t *s = json_string(buf);
    ASSERT_EQ(NB101->parse_json(s, &a, &err), 0);
    json_decref(s);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
    /* to_json gives the object form, which parses back to the same. */
    json_t *j = NB101->to_json(&a);
    ASSERT(j != NULL);
    ASSERT_EQ(json_array_size(json_object_get(j, "adjacency")), 3);
    ASSERT_EQ(NB101->parse_json(j, &b, &err), 0);
    json_decref(j);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
    /* A small buffer is refused, not overrun. */
    ASSERT(NB101->encode(&a, buf, 10) < 0);
    ASSERT(NB101->encode(&a, buf, 77) < 0);
    ASSERT_EQ(NB101->encode(&a, buf, 78), 77);
}

/* parse_string reads the text the store holds without a JSON tree
 * (nb101_scan_canonical) and anything else through jansson: both must
 * agree, on the canonical text of raw specs (unpruned, some with a
 * cycle) and on every one-character deletion, substitution or
 * addition at the end of it (the object form through parse_json takes
 * the JSON path only). */
static int same_as_json_path(const char *text)
{
    struct ctnas_arch fast, slow;
    struct ctnas_err e1, e2;
    ctnas_err_clear(&e1);
    ctnas_err_clear(&e2);
    memset(&fast, 0, sizeof fast);
    memset(&slow, 0, sizeof slow);
    int r1 = NB101->parse_string(text, &fast, &e1);
    json_t *j = json_loads(text, 0, NULL);
    /* The text form reads the cell's fields and ignores others; the
     * object form refuses others, so it is given the cell's alone. */
    json_t *cell = j && json_is_object(j) ? json_object() : NULL;
    const char *keys[] = {"adjacency", "ops"};
    for (int k = 0; cell && k < 2; k++)
        if (json_object_get(j, keys[k]))
            json_object_set(cell, keys[k], json_object_get(j, keys[k]));
    int r2 = cell ? NB101->parse_json(cell, &slow, &e2) : CTNAS_EINVAL;
    json_decref(cell);
    json_decref(j);
    if (r1 != r2)
        return 0;
    if (r1 == 0)
        return memcmp(&fast, &slow, sizeof fast) == 0;
    return !j || strcmp(e1.msg, e2.msg) == 0;
}

static void *no_malloc(size_t n)
{
    (void)n;
    return NULL;
}

static void *no_calloc(size_t k, size_t n)
{
    (void)k;
    (void)n;
    return NULL;
}

static void *no_realloc(void *p, size_t n)
{
    (void)p;
    (void)n;
    return NULL;
}

static void test_nb101_canonical_text(void)
{
    /* With every allocation failing only the scanner can read a text:
     * encode's own must never reach jansson. */
    static const struct ctnas_mem_funcs none = {no_malloc, no_calloc,
                                                no_realloc, free};
    static const char subs[] = "01,[]\"x ";
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 11);
    int fast_ok = 0;
    for (int it = 0; it < 150; it++) {
        struct ctnas_arch raw;
        memset(&raw, 0, sizeof raw);
        raw.n = 2 + (int)ctnas_rng_below(&rng, 6);
        for (int i = 0; i < raw.n; i++)
            for (int j = i + 1; j < raw.n; j++)
                raw.adj[i][j] = ctnas_rng_below(&rng, 3) == 0;
        raw.adj[0][raw.n - 1] |= it % 3 == 0;
        if (it % 10 == 0)
            raw.adj[raw.n - 1][0] = 1; /* a cycle */
        raw.ops[0] = 0;                /* input */
        raw.ops[raw.n - 1] = 1;        /* output */
        for (int i = 1; i < raw.n - 1; i++)
            raw.ops[i] = (uint8_t)(2 + ctnas_rng_below(&rng, 3));
        char text[CTNAS_ENCODING_MAX], mut[CTNAS_ENCODING_MAX + 2];
        int len = NB101->encode(&raw, text, sizeof text);
        ASSERT(len > 0);
        ASSERT(same_as_json_path(text));
        struct ctnas_arch f;
        ASSERT_EQ(ctnas_mem_replace(&none), 0);
        int fast = NB101->parse_string(text, &f, NULL);
        ctnas_mem_replace(NULL);
        ASSERT(fast != CTNAS_ENOMEM);
        for (const char *c = " x}]"; *c; c++) {
            snprintf(mut, sizeof mut, "%s%c", text, *c);
            ASSERT_MSG(same_as_json_path(mut), "%s", mut);
        }
        struct ctnas_arch a;
        fast_ok += NB101->parse_string(text, &a, NULL) == 0;
        for (int k = 0; k < len; k++) {
            memcpy(mut, text, (size_t)k);
            memcpy(mut + k, text + k + 1, (size_t)(len - k));
            ASSERT_MSG(same_as_json_path(mut), "deleted %d: %s", k, mut);
            for (const char *c = subs; *c; c++) {
                memcpy(mut, text, (size_t)len + 1);
                mut[k] = *c;
                ASSERT_MSG(same_as_json_path(mut), "%s", mut);
            }
        }
    }
    ASSERT(fast_ok > 50); /* most raw specs are valid cells */
}

static void test_nb101_prune(void)
{
    struct ctnas_arch a, b;
    struct ctnas_err err;
    char ha[CTNAS_HASH_LEN], hb[CTNAS_HASH_LEN], buf[CTNAS_ENCODING_MAX];

    /* Node 2 has no way to the output, node 3 no way from the input. */
    ASSERT_EQ(parse_text(NB101,
                         "{\"adjacency\":[[0,1,1,0,0],[0,0,0,0,1],"
                         "[0,0,0,0,0],[0,0,0,0,1],[0,0,0,0,0]],"
                         "\"ops\":[\"input\",\"conv3x3-bn-relu\","
                         "\"maxpool3x3\",\"conv1x1-bn-relu\",\"output\"]}",
                         &a, &err), 0);
    ASSERT_EQ(a.n, 3);
    ASSERT_EQ(NB101->encode(&a, buf, sizeof buf) > 0, 1);
    ASSERT_STREQ(buf, "{\"adjacency\":[[0,1,0],[0,0,1],[0,0,0]],"
                      "\"ops\":[\"input\",\"conv3x3-bn-relu\",\"output\"]}");
    ASSERT_EQ(parse_text(NB101, buf, &b, &err), 0);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
    hash_of(NB101, &a, ha);
    hash_of(NB101, &b, hb);
    ASSERT_STREQ(ha, hb);
    /* Padding beyond n is zero: archs compare with memcmp. */
    for (int i = 0; i < CTNAS_GRAPH_MAX; i++)
        for (int j = 0; j < CTNAS_GRAPH_MAX; j++)
            if (i >= a.n || j >= a.n)
                ASSERT_EQ(a.adj[i][j], 0);

    /* Edges count after pruning, as NASBench does: 11 given, 9 kept
     * (nodes 4 and 5 are unreachable from the input). */
    ASSERT_EQ(parse_text(NB101,
                         "{\"adjacency\":[[0,1,1,1,0,0,1],[0,0,1,0,0,0,1],"
                         "[0,0,0,1,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,1,0],"
                         "[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]],"
                         "\"ops\":[\"input\",\"conv3x3-bn-relu\","
                         "\"conv3x3-bn-relu\",\"conv3x3-bn-relu\","
                         "\"maxpool3x3\",\"maxpool3x3\",\"output\"]}",
                         &a, &err), 0);
    ASSERT_EQ(a.n, 5);
    ASSERT_EQ(edge_count(&a), 9);
    /* ... but not when the pruned cell still has too many. */
    ASSERT_EQ(parse_text(NB101,
                         "{\"adjacency\":[[0,1,1,1,1,1,1],[0,0,1,1,1,0,1],"
                         "[0,0,0,1,1,0,1],[0,0,0,0,1,0,1],[0,0,0,0,0,0,1],"
                         "[0,0,0,0,0,0,0],[0,0,0,0,0,0,0]],"
                         "\"ops\":[\"input\",\"conv3x3-bn-relu\","
                         "\"conv3x3-bn-relu\",\"conv3x3-bn-relu\","
                         "\"maxpool3x3\",\"maxpool3x3\",\"output\"]}",
                         &a, &err), CTNAS_EINVAL);
    ASSERT(strstr(err.msg, "too many edges: 15 > 9 (after pruning") != NULL);
}

/* A random topological relabelling of a's nodes: perm[old] = new. */
static void random_topo_perm(const struct ctnas_arch *a,
                             struct ctnas_rng *rng, int perm[])
{
    int indeg[CTNAS_GRAPH_MAX] = {0}, done[CTNAS_GRAPH_MAX] = {0};
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < a->n; j++)
            indeg[j] += a->adj[i][j];
    for (int k = 0; k < a->n; k++) {
        int ready[CTNAS_GRAPH_MAX] = {0}, r = 0;
        for (int v = 0; v < a->n; v++)
            if (!done[v] && indeg[v] == 0)
                ready[r++] = v;
        int v = ready[ctnas_rng_below(rng, (uint32_t)r)];
        done[v] = 1;
        perm[v] = k;
        for (int j = 0; j < a->n; j++)
            indeg[j] -= a->adj[v][j];
    }
}

static void permute(const struct ctnas_arch *a, const int perm[],
                    struct ctnas_arch *b)
{
    memset(b, 0, sizeof *b);
    b->n = a->n;
    for (int i = 0; i < a->n; i++) {
        b->ops[perm[i]] = a->ops[i];
        for (int j = 0; j < a->n; j++)
            b->adj[perm[i]][perm[j]] = a->adj[i][j];
    }
}

static void sorted_ops(const struct ctnas_arch *a, int count[8])
{
    memset(count, 0, 8 * sizeof count[0]);
    for (int i = 0; i < a->n; i++)
        count[a->ops[i]]++;
}

static void test_nb101_fingerprint_property(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 101);
    int flips_checked = 0;
    for (int it = 0; it < 200; it++) {
        struct ctnas_arch a, b, c;
        struct ctnas_err err;
        char ha[CTNAS_HASH_LEN], hb[CTNAS_HASH_LEN];
        NB101->sample(&rng, &a);
        hash_of(NB101, &a, ha);

        /* Isomorphic relabelling in topological order: a valid cell that
         * parses and hashes the same. */
        int perm[CTNAS_GRAPH_MAX];
        random_topo_perm(&a, &rng, perm);
        ASSERT_EQ(perm[0], 0);
        ASSERT_EQ(perm[a.n - 1], a.n - 1);
        permute(&a, perm, &b);
        json_t *j = NB101->to_json(&b);
        ASSERT_EQ(NB101->parse_json(j, &c, &err), 0);
        json_decref(j);
        ASSERT(memcmp(&b, &c, sizeof b) == 0);
        hash_of(NB101, &c, hb);
        ASSERT_STREQ(ha, hb);

        /* The fingerprint needs only the graph: any relabelling. */
        int p[CTNAS_GRAPH_MAX];
        for (int i = 0; i < a.n; i++)
            p[i] = i;
        ctnas_rng_shuffle(&rng, p, a.n);
        permute(&a, p, &b);
        hash_of(NB101, &b, hb);
        ASSERT_STREQ(ha, hb);

        /* Another op on one node changes the label multiset, hence the
         * fingerprint. */
        if (a.n > 2) {
            b = a;
            int v = 1 + (int)ctnas_rng_below(&rng, (uint32_t)a.n - 2);
            b.ops[v] = (uint8_t)(2 + (b.ops[v] - 2 + 1 +
                                      (int)ctnas_rng_below(&rng, 2)) % 3);
            ASSERT(b.ops[v] != a.ops[v]);
            hash_of(NB101, &b, hb);
            ASSERT_MSG(strcmp(ha, hb) != 0, "op change kept hash %s", ha);
        }

        /* Flip one edge; when the valid result has another edge count or
         * op multiset it is another cell. */
        int i = (int)ctnas_rng_below(&rng, (uint32_t)a.n - 1);
        int k = i + 1 + (int)ctnas_rng_below(&rng, (uint32_t)(a.n - 1 - i));
        b = a;
        b.adj[i][k] ^= 1;
        j = NB101->to_json(&b);
        int rc = NB101->parse_json(j, &c, &err);
        json_decref(j);
        if (rc == 0) {
            int ca[8], cc[8];
            sorted_ops(&a, ca);
            sorted_ops(&c, cc);
            if (edge_count(&c) != edge_count(&a) ||
                memcmp(ca, cc, sizeof ca) != 0) {
                hash_of(NB101, &c, hb);
                ASSERT_MSG(strcmp(ha, hb) != 0, "edge flip kept hash %s", ha);
                flips_checked++;
            }
        }
    }
    ASSERT(flips_checked > 50);
}

static void test_nb101_dataset(void)
{
    char path[1024], line[8192];
    ASSERT(test_shared_data("nb101_val.jsonl", path, sizeof path) != NULL);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    int lines = 0, bad = 0;
    while (lines < 2000 && fgets(line, sizeof line, f) != NULL) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (j == NULL) {
            bad++;
            continue;
        }
        lines++;
        struct ctnas_arch a;
        struct ctnas_err err;
        char h[CTNAS_HASH_LEN];
        const char *want = json_string_value(json_object_get(j, "nb101_hash"));
        /* The line's cell, without its accuracies and hash. */
        json_t *cell = json_pack("{s:O, s:O}", "adjacency",
                                 json_object_get(j, "adjacency"), "ops",
                                 json_object_get(j, "ops"));
        int prc = cell ? NB101->parse_json(cell, &a, &err) : -1;
        json_decref(cell);
        if (prc != 0) {
            printf("# line %d rejected: %s: %s\n", lines, err.field, err.msg);
            bad++;
        } else {
            hash_of(NB101, &a, h);
            if (want == NULL || strcmp(h, want) != 0) {
                if (bad < 5)
                    printf("# line %d: hash %s, published %s\n", lines, h,
                           want ? want : "(none)");
                bad++;
            } else if (!roundtrips(NB101, &a)) {
                bad++;
            }
        }
        json_decref(j);
    }
    fclose(f);
    ASSERT_EQ(lines, 2000);
    ASSERT_EQ(bad, 0);
}

static void test_nb101_sample(void)
{
    /* Valid labelled cells by node count (n = 2..7): what the real space
     * holds, so what sample's node counts must follow. */
    static const double cells[8] = {0, 0, 1, 6, 90, 3267, 125145, 1164699};
    double total = 0;
    for (int n = 2; n <= 7; n++)
        total += cells[n];

    struct ctnas_rng rng, rng2;
    ctnas_rng_seed(&rng, 7);
    ctnas_rng_seed(&rng2, 7);
    enum { N = 20000 };
    int sizes[8] = {0}, edges7[10] = {0}, ops[3] = {0};
    for (int it = 0; it < N; it++) {
        struct ctnas_arch a, b;
        struct ctnas_err err;
        NB101->sample(&rng, &a);
        ASSERT(a.n >= 2 && a.n <= 7);
        int e = edge_count(&a);
        ASSERT(e <= 9);
        sizes[a.n]++;
        if (a.n == 7)
            edges7[e]++;
        ASSERT_EQ(a.ops[0], 0);             /* input */
        ASSERT_EQ(a.ops[a.n - 1], 1);       /* output */
        for (int i = 1; i < a.n - 1; i++) {
            ASSERT(a.ops[i] >= 2 && a.ops[i] < 5);  /* an op */
            ops[a.ops[i] - 2]++;
        }
        if (it < 2000) {
            ASSERT(roundtrips(NB101, &a));
            /* Already canonical, nothing pruned: the object form parses
             * to itself with all a.n nodes. */
            json_t *j = NB101->to_json(&a);
            ASSERT_EQ(NB101->parse_json(j, &b, &err), 0);
            json_decref(j);
            ASSERT(memcmp(&a, &b, sizeof a) == 0);
            /* Deterministic given the generator state. */
            NB101->sample(&rng2, &b);
            ASSERT(memcmp(&a, &b, sizeof a) == 0);
        }
    }
    /* Binomial counts within 5 sd (+1) of N * cells[n] / total: for
     * 7, 6, 5 nodes about 18013 +- 42, 1935 +- 42, 51 +- 7.  Cells of 2..4
     * nodes are 97 in 1.29M: expect 1.5 in N. */
    for (int n = 5; n <= 7; n++) {
        double p = cells[n] / total, mean = N * p;
        double sd = sqrt(N * p * (1 - p));
        ASSERT_MSG(fabs(sizes[n] - mean) <= 5 * sd + 1,
                   "%d-node cells drawn %d times of %d, expected %.1f "
                   "+- %.1f", n, sizes[n], N, mean, sd);
    }
    ASSERT_MSG(sizes[2] + sizes[3] + sizes[4] <= 10,
               "%d cells of 2..4 nodes of %d", sizes[2] + sizes[3] + sizes[4],
               N);
    /* Uniform within a size too: the 4793 valid 7-node graphs have 6, 7,
     * 8, 9 edges 1, 57, 718, 4017 times. */
    static const double graphs7[10] = {0, 0, 0, 0, 0, 0, 1, 57, 718, 4017};
    for (int e = 6; e <= 9; e++) {
        double p = graphs7[e] / 4793, mean = sizes[7] * p;
        double sd = sqrt(sizes[7] * p * (1 - p));
        ASSERT_MSG(fabs(edges7[e] - mean) <= 5 * sd + 1,
                   "7-node cells with %d edges drawn %d times of %d, "
                   "expected %.1f +- %.1f", e, edges7[e], sizes[7], mean, sd);
    }
    ASSERT(edges7[0] + edges7[1] + edges7[2] + edges7[3] + edges7[4] +
           edges7[5] == 0);
    /* Middle-node ops uniform over the three. */
    int n_ops = ops[0] + ops[1] + ops[2];
    for (int k = 0; k < 3; k++) {
        double mean = n_ops / 3.0, sd = sqrt(n_ops * (2.0 / 9.0));
        ASSERT_MSG(fabs(ops[k] - mean) <= 5 * sd,
                   "op %d on %d of %d middle nodes", k, ops[k], n_ops);
    }
}

static void test_nb101_mutate(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 11);
    struct ctnas_arch a, b;
    struct ctnas_err err;
    char ha[CTNAS_HASH_LEN], hb[CTNAS_HASH_LEN];
    int grew = 0;
    NB101->sample(&rng, &a);
    for (int it = 0; it < 1000; it++) {
        NB101->mutate(&a, &rng, &b);
        ASSERT(roundtrips(NB101, &b));
        ASSERT(edge_count(&b) <= 9);
        hash_of(NB101, &a, ha);
        hash_of(NB101, &b, hb);
        ASSERT_MSG(strcmp(ha, hb) != 0, "mutation kept hash %s", ha);
        grew += b.n > a.n;
        a = b;
    }
    ASSERT(grew > 0);
    /* In place (out aliasing in) works too. */
    b = a;
    hash_of(NB101, &b, ha);
    NB101->mutate(&b, &rng, &b);
    hash_of(NB101, &b, hb);
    ASSERT(strcmp(ha, hb) != 0);
    /* The 2-node cell has no one-flip neighbour; mutate still moves. */
    ASSERT_EQ(parse_text(NB101, "{\"adjacency\":[[0,1],[0,0]],"
                         "\"ops\":[\"input\",\"output\"]}", &a, &err), 0);
    for (int it = 0; it < 20; it++) {
        NB101->mutate(&a, &rng, &b);
        ASSERT_EQ(b.n, 3);
        ASSERT(roundtrips(NB101, &b));
    }
}

static void test_nb101_graph(void)
{
    struct ctnas_arch a;
    struct ctnas_err err;
    struct ctnas_graph g;
    ASSERT_EQ(parse_text(NB101, NB101_CELL1, &a, &err), 0);
    memset(&g, 0xff, sizeof g);
    NB101->to_graph(&a, &g);
    ASSERT_EQ(g.n, 7);
    ASSERT_STREQ(NB101->node_type_names[g.types[0]], "input");
    ASSERT_STREQ(NB101->node_type_names[g.types[6]], "output");
    ASSERT_STREQ(NB101->node_type_names[g.types[3]], "maxpool3x3");
    ASSERT_EQ(g.types[7], 0);
    for (int i = 0; i < CTNAS_GRAPH_MAX; i++)
        for (int j = 0; j < CTNAS_GRAPH_MAX; j++) {
            if (j <= i || i >= g.n || j >= g.n)
                ASSERT_EQ(g.adj[i][j], 0);
            else
                ASSERT_EQ(g.adj[i][j], a.adj[i][j]);
        }
}

/* ---- NAS-Bench-201 ---- */

#define NB201_CELL                                                      \
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"  \
    "nor_conv_3x3~1|skip_connect~2|"

static void test_nb201_valid(void)
{
    struct ctnas_arch a, b;
    struct ctnas_err err;
    char buf[CTNAS_ENCODING_MAX], h[CTNAS_HASH_LEN], want[CTNAS_HASH_LEN];

    ASSERT_EQ(NB201->parse_string(NB201_CELL, &a, &err), 0);
    ASSERT_EQ(a.n, 6);
    ASSERT_STREQ(NB201->node_type_names[2 + a.ops[2]], "avg_pool_3x3");
    ASSERT_STREQ(NB201->node_type_names[2 + a.ops[3]], "skip_connect");
    ASSERT_EQ(NB201->encode(&a, buf, sizeof buf), (int)strlen(NB201_CELL));
    ASSERT_STREQ(buf, NB201_CELL);
    ASSERT(roundtrips(NB201, &a));
    hash_of(NB201, &a, h);
    ctnas_md5_hex(NB201_CELL, strlen(NB201_CELL), want);
    ASSERT_STREQ(h, want);
    ASSERT(NB201->encode(&a, buf, strlen(NB201_CELL)) < 0);

    /* to_json is the string; parse_json takes it and the object form. */
    json_t *j = NB201->to_json(&a);
    ASSERT_STREQ(json_string_value(j), NB201_CELL);
    ASSERT_EQ(NB201->parse_json(j, &b, &err), 0);
    json_decref(j);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
    ASSERT_EQ(parse_text(NB201, "{\"ops\":[\"nor_conv_3x3\","
                         "\"nor_conv_3x3\",\"avg_pool_3x3\",\"skip_connect\","
                         "\"nor_conv_3x3\",\"skip_connect\"]}", &b, &err), 0);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
}

static void test_nb201_invalid(void)
{
    static const struct {
        const char *s, *field, *msg;
    } c[] = {
        {"", "", "empty"},
        {"|none~0|+|none~0|none~1|", "", "too few groups: 2"},
        {"|none~0|", "", "too few groups: 1"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "",
         "too many groups"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|x", "",
         "trailing characters"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2| ", "",
         "trailing characters"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|", "",
         "trailing characters"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2", "ops[5]",
         "must be 'none~2|'"},
        {"|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "ops[0]",
         "edge 0 of group 1 must be 'none~0|' (edge 0 -> 1), got 'none~1|'"},
        {"|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "ops[2]",
         "must be 'none~1|'"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~21|", "ops[5]",
         "got 'none~21|'"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|none~|", "ops[5]",
         "must be 'none~2|'"},
        {"|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "ops[0]",
         "unknown op 'conv'; expected one of none, skip_connect"},
        {"|none~0|+|none~0|none~1|+|none~0|Nor_conv_3x3~1|none~2|", "ops[4]",
         "unknown op 'Nor_conv_3x3'"},
        {"|none~0|+|none~0|none~1|+|none~0|nonenone~2|", "ops[4]",
         "unknown op 'nonenone'"},
        {"|none~0|+|none~0|+|none~0|none~1|none~2|", "",
         "group 2 has 1 edges, expected 2"},
        {"|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "",
         "group 1 must have exactly 1 edge(s)"},
        {"none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "",
         "group 1 must start with '|'"},
        {"|none~0|+none~0|none~1|+|none~0|none~1|none~2|", "",
         "group 2 must start with '|'"},
        {"|none|+|none~0|none~1|+|none~0|none~1|none~2|", "ops[0]",
         "must be written 'op~0|', got 'none'"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        struct ctnas_arch a;
        struct ctnas_err err;
        ctnas_err_clear(&err);
        int rc = NB201->parse_string(c[i].s, &a, &err);
        ASSERT_MSG(rc == CTNAS_EINVAL, "case %zu accepted: %s", i, c[i].s);
        ASSERT_MSG(strcmp(err.field, c[i].field) == 0,
                   "case %zu: field \"%s\", expected \"%s\" (%s)", i,
                   err.field, c[i].field, err.msg);
        ASSERT_MSG(strstr(err.msg, c[i].msg) != NULL,
                   "case %zu: msg \"%s\" lacks \"%s\"", i, err.msg,
                   c[i].msg);
    }
    /* JSON forms. */
    static const struct {
        const char *json, *field, *msg;
    } d[] = {
        {"17", "", "nasbench201 cell"},
        {"{\"ops\":[\"none\"]}", "ops", "6 op names"},
        {"{}", "ops", "missing ops"},
        {"{\"ops\":[\"none\",\"none\",\"none\",\"none\",\"none\",\"conv\"]}",
         "ops[5]", "unknown op 'conv'"},
        {"{\"ops\":[\"none\",\"none\",1,\"none\",\"none\",\"none\"]}",
         "ops[2]", "string"},
        {"\"|none~0|+|none~0|none~1|\"", "", "too few groups"},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        struct ctnas_arch a;
        struct ctnas_err err;
        int rc = parse_text(NB201, d[i].json, &a, &err);
        ASSERT_MSG(rc == CTNAS_EINVAL, "case %zu accepted: %s", i, d[i].json);
        ASSERT_MSG(strcmp(err.field, d[i].field) == 0,
                   "case %zu: field \"%s\", expected \"%s\" (%s)", i,
                   err.field, d[i].field, err.msg);
        ASSERT_MSG(strstr(err.msg, d[i].msg) != NULL,
                   "case %zu: msg \"%s\" lacks \"%s\"", i, err.msg,
                   d[i].msg);
    }
}

static int cmp_hash33(const void *x, const void *y)
{
    return strcmp(x, y);
}

static void test_nb201_dataset(void)
{
    char path[1024], line[1024];
    ASSERT(test_shared_data("nb201_cifar10.csv", path, sizeof path) != NULL);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    char (*hashes)[CTNAS_HASH_LEN] = calloc(20000, sizeof *hashes);
    if (hashes == NULL) {
        fclose(f);
        ASSERT(hashes != NULL);
    }
    int n = 0, bad = 0;
    ASSERT(fgets(line, sizeof line, f) != NULL);    /* header */
    while (n < 20000 && fgets(line, sizeof line, f) != NULL) {
        char *comma = strchr(line, ',');
        if (comma == NULL)
            continue;
        *comma = '\0';
        struct ctnas_arch a;
        struct ctnas_err err;
        char buf[CTNAS_ENCODING_MAX];
        if (NB201->parse_string(line, &a, &err) != 0) {
            printf("# rejected %s: %s\n", line, err.msg);
            bad++;
            continue;
        }
        if (NB201->encode(&a, buf, sizeof buf) < 0 || strcmp(buf, line) != 0)
            bad++;
        hash_of(NB201, &a, hashes[n++]);
    }
    fclose(f);
    qsort(hashes, (size_t)n, sizeof hashes[0], cmp_hash33);
    int distinct = n > 0;
    for (int i = 1; i < n; i++)
        distinct += strcmp(hashes[i - 1], hashes[i]) != 0;
    free(hashes);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(n, 15625);
    ASSERT_EQ(distinct, 15625);
}

static int graph_edges(const struct ctnas_graph *g)
{
    int k = 0;
    for (int i = 0; i < CTNAS_GRAPH_MAX; i++)
        for (int j = 0; j < CTNAS_GRAPH_MAX; j++)
            k += g->adj[i][j];
    return k;
}

static const char *type_name(const struct ctnas_graph *g, int i)
{
    return NB201->node_type_names[g->types[i]];
}

static void test_nb201_graph(void)
{
    struct ctnas_arch a;
    struct ctnas_err err;
    struct ctnas_graph g;

    /* No none: input, 6 edge-nodes, output. */
    ASSERT_EQ(NB201->parse_string(NB201_CELL, &a, &err), 0);
    NB201->to_graph(&a, &g);
    ASSERT_EQ(g.n, 8);
    ASSERT_EQ(graph_edges(&g), 10);
    ASSERT_STREQ(type_name(&g, 0), "input");
    ASSERT_STREQ(type_name(&g, 1), "nor_conv_3x3");   /* 0->1 */
    ASSERT_STREQ(type_name(&g, 3), "avg_pool_3x3");   /* 1->2 */
    ASSERT_STREQ(type_name(&g, 4), "skip_connect");   /* 0->3 */
    ASSERT_STREQ(type_name(&g, 7), "output");
    /* input -> edges leaving 0 */
    ASSERT(g.adj[0][1] && g.adj[0][2] && g.adj[0][4]);
    ASSERT(!g.adj[0][3] && !g.adj[0][5] && !g.adj[0][6]);
    /* (0->1) -> (1->2), (1->3); (0->2) and (1->2) -> (2->3) */
    ASSERT(g.adj[1][3] && g.adj[1][5] && g.adj[2][6] && g.adj[3][6]);
    /* edges entering 3 -> output */
    ASSERT(g.adj[4][7] && g.adj[5][7] && g.adj[6][7]);

    /* none edges drop their nodes. */
    ASSERT_EQ(NB201->parse_string("|nor_conv_3x3~0|+|none~0|none~1|+"
                                  "|skip_connect~0|nor_conv_1x1~1|none~2|",
                                  &a, &err), 0);
    NB201->to_graph(&a, &g);
    ASSERT_EQ(g.n, 5);
    ASSERT_EQ(graph_edges(&g), 5);
    ASSERT_STREQ(type_name(&g, 1), "nor_conv_3x3");
    ASSERT_STREQ(type_name(&g, 2), "skip_connect");
    ASSERT_STREQ(type_name(&g, 3), "nor_conv_1x1");
    ASSERT_STREQ(type_name(&g, 4), "output");
    ASSERT(g.adj[0][1] && g.adj[0][2] && g.adj[1][3] && g.adj[2][4] &&
           g.adj[3][4]);

    /* A node off every input->output path goes too: 0->1 leads nowhere. */
    ASSERT_EQ(NB201->parse_string("|nor_conv_3x3~0|+|none~0|none~1|+"
                                  "|skip_connect~0|none~1|none~2|",
                                  &a, &err), 0);
    NB201->to_graph(&a, &g);
    ASSERT_EQ(g.n, 3);
    ASSERT_EQ(graph_edges(&g), 2);
    ASSERT_STREQ(type_name(&g, 1), "skip_connect");

    /* No path at all: input and output, unconnected. */
    ASSERT_EQ(NB201->parse_string("|none~0|+|none~0|none~1|+"
                                  "|none~0|none~1|none~2|", &a, &err), 0);
    NB201->to_graph(&a, &g);
    ASSERT_EQ(g.n, 2);
    ASSERT_EQ(graph_edges(&g), 0);
    ASSERT_STREQ(type_name(&g, 0), "input");
    ASSERT_STREQ(type_name(&g, 1), "output");
    ASSERT_EQ(NB201->parse_string("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+"
                                  "|none~0|none~1|none~2|", &a, &err), 0);
    NB201->to_graph(&a, &g);
    ASSERT_EQ(g.n, 2);
    ASSERT_EQ(graph_edges(&g), 0);
}

/* Every one of the 15,625 graphs: topological, well typed, padded. */
/* The low bits of ctnas_arch_hash64 (the slot of an open-addressing
 * table) spread all 15,625 cells over 2^15 slots about as a random
 * function would (12,288 distinct slots expected), and equal cells,
 * parsed or built, hash equal. */
static void test_arch_hash_spreads(void)
{
    enum { SLOTS = 1 << 15 };
    unsigned char *seen = calloc(SLOTS, 1);
    int distinct = 0;
    for (int code = 0; code < 15625; code++) {
        struct ctnas_arch a;
        memset(&a, 0, sizeof a);
        a.n = 6;
        for (int e = 0, c = code; e < 6; e++, c /= 5)
            a.ops[e] = (uint8_t)(c % 5);
        size_t h = ctnas_arch_hash64(&a) & (SLOTS - 1);
        distinct += !seen[h];
        seen[h] = 1;
    }
    free(seen);
    ASSERT_MSG(distinct > 12000, "%d distinct slots", distinct);
    struct ctnas_arch x, y;
    memset(&y, 0, sizeof y);
    ASSERT_EQ(NB201->parse_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|"
                                  "+|avg_pool_3x3~0|nor_conv_1x1~1|"
                                  "nor_conv_3x3~2|", &x, NULL), 0);
    y.n = 6;
    const uint8_t ops[6] = {3, 0, 1, 4, 2, 3};
    memcpy(y.ops, ops, 6);
    ASSERT(memcmp(&x, &y, sizeof x) == 0);
    ASSERT(ctnas_arch_hash64(&x) == ctnas_arch_hash64(&y));
    y.ops[5] = 2;
    ASSERT(ctnas_arch_hash64(&x) != ctnas_arch_hash64(&y));
}

static void test_nb201_graph_all(void)
{
    int max_n = 0;
    for (int code = 0; code < 15625; code++) {
        struct ctnas_arch a;
        struct ctnas_graph g;
        memset(&a, 0, sizeof a);
        a.n = 6;
        for (int e = 0, c = code; e < 6; e++, c /= 5)
            a.ops[e] = (uint8_t)(c % 5);
        NB201->to_graph(&a, &g);
        ASSERT(g.n >= 2 && g.n <= NB201->max_nodes);
        max_n = g.n > max_n ? g.n : max_n;
        ASSERT_EQ(g.types[0], 0);
        ASSERT_EQ(g.types[g.n - 1], 1);
        int reach[CTNAS_GRAPH_MAX] = {1};
        for (int i = 0; i < CTNAS_GRAPH_MAX; i++) {
            if (i >= g.n)
                ASSERT_EQ(g.types[i], 0);
            else if (i > 0 && i < g.n - 1)
                ASSERT(g.types[i] > 2 && g.types[i] < 7);   /* never none */
            for (int j = 0; j < CTNAS_GRAPH_MAX; j++) {
                if (j <= i || j >= g.n)
                    ASSERT_EQ(g.adj[i][j], 0);
                if (g.adj[i][j] && reach[i])
                    reach[j] = 1;
            }
        }
        /* Every inner node lies on an input->output path. */
        for (int i = 1; i < g.n - 1; i++) {
            ASSERT(reach[i]);
            int out = 0;
            for (int j = i + 1; j < g.n; j++)
                out += g.adj[i][j];
            ASSERT(out > 0);
        }
        if (g.n > 2)
            ASSERT(reach[g.n - 1]);
    }
    ASSERT_EQ(max_n, 8);
}

static void test_nb201_sample(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 201);
    enum { N = 50000 };
    int count[6][5];
    memset(count, 0, sizeof count);
    for (int it = 0; it < N; it++) {
        struct ctnas_arch a;
        NB201->sample(&rng, &a);
        ASSERT_EQ(a.n, 6);
        for (int e = 0; e < 6; e++) {
            ASSERT(a.ops[e] < 5);
            count[e][a.ops[e]]++;
        }
        if (it < 500)
            ASSERT(roundtrips(NB201, &a));
    }
    /* 10000 expected per cell, sd ~ 89: allow 5 sd. */
    for (int e = 0; e < 6; e++)
        for (int k = 0; k < 5; k++)
            ASSERT_MSG(abs(count[e][k] - N / 5) < 450,
                       "edge %d op %d drawn %d times of %d", e, k,
                       count[e][k], N);
}

static void test_nb201_mutate(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 3);
    struct ctnas_arch a, b;
    NB201->sample(&rng, &a);
    for (int it = 0; it < 1000; it++) {
        NB201->mutate(&a, &rng, &b);
        int diff = 0;
        for (int e = 0; e < 6; e++) {
            ASSERT(b.ops[e] < 5);
            diff += a.ops[e] != b.ops[e];
        }
        ASSERT_EQ(diff, 1);
        ASSERT(roundtrips(NB201, &b));
        a = b;
    }
}

int main(void)
{
    char path[1024];

    TEST_RUN(test_md5_vectors);
    TEST_RUN(test_space_table);
    TEST_RUN(test_nb101_valid);
    TEST_RUN(test_nb101_invalid);
    TEST_RUN(test_nb101_roundtrip);
    TEST_RUN(test_nb101_canonical_text);
    TEST_RUN(test_nb101_prune);
    TEST_RUN(test_nb101_fingerprint_property);
    if (test_shared_data("nb101_val.jsonl", path, sizeof path) != NULL)
        TEST_RUN(test_nb101_dataset);
    else
        TEST_SKIP(test_nb101_dataset, "../shared/data/nb101_val.jsonl absent");
    TEST_RUN(test_nb101_sample);
    TEST_RUN(test_nb101_mutate);
    TEST_RUN(test_nb101_graph);
    TEST_RUN(test_nb201_valid);
    TEST_RUN(test_nb201_invalid);
    if (test_shared_data("nb201_cifar10.csv", path, sizeof path) != NULL)
        TEST_RUN(test_nb201_dataset);
    else
        TEST_SKIP(test_nb201_dataset,
                  "../shared/data/nb201_cifar10.csv absent");
    TEST_RUN(test_nb201_graph);
    TEST_RUN(test_nb201_graph_all);
    TEST_RUN(test_arch_hash_spreads);
    TEST_RUN(test_nb201_sample);
    TEST_RUN(test_nb201_mutate);
    return test_done();
}
