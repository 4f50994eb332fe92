/*
 * jsonv.c - request JSON validation helpers.
 *
 * Every getter follows one contract: an absent optional key returns 0
 * and leaves *out alone, so callers preset defaults; any other problem
 * returns a negative code with err->field the dotted path of the value
 * ("items[3].measurements[0].value"), which the client sees as "field".
 * Paths longer than 127 bytes are truncated, which only shortens the
 * message.  Nothing here allocates; strings returned are borrowed from
 * the JSON they came from.
 */
#include "config.h"
#include "jsonv.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

const char *ctnas_jsonv_path(char *buf, size_t cap, const char *prefix,
                             const char *key)
{
    if (prefix == NULL || prefix[0] == '\0')
        snprintf(buf, cap, "%s", key);
    else
        snprintf(buf, cap, "%s.%s", prefix, key);
    return buf;
}

const char *ctnas_jsonv_index(char *buf, size_t cap, const char *prefix,
                              size_t i)
{
    snprintf(buf, cap, "%s[%zu]", prefix ? prefix : "", i);
    return buf;
}

/* Error messages say what was sent ("not a string"), which is usually
 * all a client needs to see its mistake. */
static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

int ctnas_jsonv_object(const json_t *obj, const char *path,
                       struct ctnas_err *err)
{
    if (obj == NULL || !json_is_object(obj))
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be an object, not %s",
                             path && path[0] ? path : "body",
                             obj ? type_name(obj) : "missing");
    return 0;
}

/* Shared start of every getter: the value, or NULL with rc set. */
static const json_t *get(const json_t *obj, const char *prefix,
                         const char *key, int required, char *path,
                         size_t cap, int *rc, struct ctnas_err *err)
{
    ctnas_jsonv_path(path, cap, prefix, key);
    const json_t *v = json_object_get(obj, key);
    *rc = 0;
    if (v == NULL && required)
        *rc = ctnas_err_set(err, CTNAS_EINVAL, path, "%s is required", path);
    return v;
}

int ctnas_jsonv_string(const json_t *obj, const char *prefix,
                       const char *key, int required, const char **out,
                       size_t max_len, struct ctnas_err *err)
{
    char path[128];
    int rc;
    const json_t *v = get(obj, prefix, key, required, path, sizeof path,
                          &rc, err);
    if (v == NULL)
        return rc;
    if (!json_is_string(v))
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be a string, not %s", path,
                             type_name(v));
    size_t len = json_string_length(v);
    if (len == 0 || len > max_len)
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be 1 to %zu characters", path,
                             max_len);
        /* The decoders here do not pass JSON_ALLOW_NUL, so this is a
         * guard for values built some other way: C code downstream
         * would silently cut the string at a NUL. */
    if (strlen(json_string_value(v)) != len)
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must not contain NUL characters", path);
    *out = json_string_value(v);
    return 0;
}

int ctnas_jsonv_number(const json_t *obj, const char *prefix,
                       const char *key, int required, double *out,
                       double min, double max, struct ctnas_err *err)
{
    char path[128];
    int rc;
    const json_t *v = get(obj, prefix, key, required, path, sizeof path,
                          &rc, err);
    if (v == NULL)
        return rc;
    if (!json_is_number(v))
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be a number, not %s", path,
                             type_name(v));
    double d = json_number_value(v);
        /* ENUMERIC rather than EINVAL: the type was right, the value is
         * out of range; both answer 400. */
    if (!isfinite(d) || d < min || d > max)
        return ctnas_err_set(err, CTNAS_ENUMERIC, path,
                             "%s must be a finite number in [%g, %g]", path,
                             min, max);
    *out = d;
    return 0;
}

int ctnas_jsonv_int(const json_t *obj, const char *prefix, const char *key,
                    int required, int64_t *out, int64_t min, int64_t max,
                    struct ctnas_err *err)
{
    char path[128];
    int rc;
    const json_t *v = get(obj, prefix, key, required, path, sizeof path,
                          &rc, err);
    if (v == NULL)
        return rc;
        /* 2.0 is refused too: jansson tells integers from reals by their
         * spelling, and accepting a real would invite silent truncation. */
    if (!json_is_integer(v)) {
        if (json_is_real(v))
            return ctnas_err_set(err, CTNAS_EINVAL, path,
                                 "%s must be an integer, written without "
                                 "a decimal point or exponent (2, not "
                                 "2.0)", path);
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be an integer, not %s", path,
                             type_name(v));
    }
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return ctnas_err_set(err, CTNAS_ENUMERIC, path,
                             "%s must be an integer in [%lld, %lld]", path,
                             (long long)min, (long long)max);
    *out = i;
    return 0;
}

int ctnas_jsonv_bool(const json_t *obj, const char *prefix, const char *key,
                     int required, int *out, struct ctnas_err *err)
{
    char path[128];
    int rc;
    const json_t *v = get(obj, prefix, key, required, path, sizeof path,
                          &rc, err);
    if (v == NULL)
        return rc;
    if (!json_is_boolean(v))
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be true or false, not %s", path,
                             type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int in_list(const char *const *list, const char *key)
{
    for (const char *const *a = list; a != NULL && *a; a++)
        if (strcmp(*a, key) == 0)
            return 1;
    return 0;
}

static int unknown_key(const char *prefix, const char *key,
                       struct ctnas_err *err)
{
    char path[128];
    ctnas_jsonv_path(path, sizeof path, prefix, key);
    return ctnas_err_set(err, CTNAS_EINVAL, path, "unknown field %s", path);
}

int ctnas_jsonv_only(const json_t *obj, const char *prefix,
                     const char *const *allowed, struct ctnas_err *err)
{
    const char *key;
    const json_t *v;
    /* Linear in the list, which holds at most a few dozen keys.  The cast
     * is safe: foreach only reads. */
    json_object_foreach((json_t *)obj, key, v)
        if (!in_list(allowed, key))
            return unknown_key(prefix, key, err);
    return 0;
}

/* For query-string and path values, which arrive as text. */
int ctnas_jsonv_parse_int(const char *s, const char *field, int64_t min,
                          int64_t max, int64_t *out, struct ctnas_err *err)
{
    char *end;
    errno = 0;
    /* strtoll would also take leading blanks and a '+'. */
    const char *digits = s + (s[0] == '-');
    long long v = strtoll(s, &end, 10);
    if (*digits < '0' || *digits > '9' || errno != 0 || end == s ||
        *end != '\0' || v < min || v > max)
        return ctnas_err_set(err, CTNAS_EINVAL, field,
                             "%s must be an integer in [%lld, %lld]", field,
                             (long long)min, (long long)max);
    *out = v;
    return 0;
}

static int read_enum(const json_t *obj, const char *prefix,
                     const struct ctnas_jsonv_field *f, int *out,
                     struct ctnas_err *err)
{
    const char *s = NULL;
    int rc = ctnas_jsonv_string(obj, prefix, f->name, 0, &s, 64, err);
    if (rc < 0 || s == NULL)
        return rc;
    int v = ctnas_name_index(f->names, s);
    if (v >= 0) {
        *out = v;
        return 0;
    }
    char path[128], list[160] = "";
    for (int i = 0; f->names[i]; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                 f->names[i]);
    }
    ctnas_jsonv_path(path, sizeof path, prefix, f->name);
    return ctnas_err_set(err, CTNAS_EINVAL, path,
                         "%s: unknown value '%s' (expected one of %s)", path,
                         s, list);
}

/* Every field is optional: the struct at base holds the defaults, which
 * absent keys keep.  Integer kinds go through int64_t and are narrowed
 * back only after the range check, so f->min and f->max must fit the
 * member's type.  Stops at the first bad field. */
int ctnas_jsonv_read_fields(const json_t *obj, const char *prefix,
                            const struct ctnas_jsonv_field *fields,
                            size_t n, void *base, struct ctnas_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct ctnas_jsonv_field *f = &fields[i];
        char *p = (char *)base + f->off;
        int64_t v;
        int rc = 0;
        switch (f->kind) {
        case CTNAS_JV_INT:
            v = *(int *)p;
            rc = ctnas_jsonv_int(obj, prefix, f->name, 0, &v,
                                 (int64_t)f->min, (int64_t)f->max, err);
            *(int *)p = (int)v;
            break;
        case CTNAS_JV_LONG:
            v = *(long *)p;
            rc = ctnas_jsonv_int(obj, prefix, f->name, 0, &v,
                                 (int64_t)f->min, (int64_t)f->max, err);
            *(long *)p = (long)v;
            break;
        case CTNAS_JV_U64:
            v = (int64_t)*(uint64_t *)p;
            rc = ctnas_jsonv_int(obj, prefix, f->name, 0, &v,
                                 (int64_t)f->min, (int64_t)f->max, err);
            *(uint64_t *)p = (uint64_t)v;
            break;
        case CTNAS_JV_REAL:
            rc = ctnas_jsonv_number(obj, prefix, f->name, 0, (double *)p,
                                    f->min, f->max, err);
            break;
        case CTNAS_JV_BOOL:
            rc = ctnas_jsonv_bool(obj, prefix, f->name, 0, (int *)p, err);
            break;
        case CTNAS_JV_ENUM:
            rc = read_enum(obj, prefix, f, (int *)p, err);
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The inverse of read_fields: every field, so a stored configuration is
 * complete and reads back to the same struct. */
json_t *ctnas_jsonv_write_fields(const struct ctnas_jsonv_field *fields,
                                 size_t n, const void *base)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < n; i++) {
        const struct ctnas_jsonv_field *f = &fields[i];
        const char *p = (const char *)base + f->off;
        json_t *v = NULL;
        switch (f->kind) {
        case CTNAS_JV_INT: v = json_integer(*(const int *)p); break;
        case CTNAS_JV_LONG: v = json_integer(*(const long *)p); break;
        case CTNAS_JV_U64:
            v = json_integer((json_int_t)*(const uint64_t *)p);
            break;
        case CTNAS_JV_REAL: v = json_real(*(const double *)p); break;
        case CTNAS_JV_BOOL: v = json_boolean(*(const int *)p); break;
        case CTNAS_JV_ENUM: v = json_string(f->names[*(const int *)p]);
            break;
        }
        /* set_new fails on a NULL value */
        if (json_object_set_new(o, f->name, v) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

int ctnas_jsonv_only_fields(const json_t *obj, const char *prefix,
                            const struct ctnas_jsonv_field *fields,
                            size_t n, const char *const *also,
                            struct ctnas_err *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int known = in_list(also, key);
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(fields[i].name, key) == 0;
        if (!known)
            return unknown_key(prefix, key, err);
    }
    return 0;
}

json_t *ctnas_jsonv_real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *ctnas_jsonv_append(json_t *arr, json_t *v)
{
    /* append_new releases v when it fails, arr NULL included */
    if (json_array_append_new(arr, v) == 0)
        return arr;
    json_decref(arr);
    return NULL;
}

json_t *ctnas_jsonv_int64_array(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a != NULL && i < n; i++)
        a = ctnas_jsonv_append(a, json_integer(v[i]));
    return a;
}

json_t *ctnas_jsonv_load(const char *buf, size_t len, size_t flags,
                         json_error_t *jerr, int *oom)
{
    unsigned long f0 = ctnas_mem_failures();
    json_t *j = json_loadb(buf, len, flags, jerr);
    if (ctnas_mem_failures() != f0) {
        /* Even a document jansson returns: its lexer drops a character
         * it cannot append ("conv3x3-bn-rel"), so the text may be cut. */
        json_decref(j);
        j = NULL;
    }
    *oom = j == NULL && (ctnas_mem_failures() != f0 ||
                         json_error_code(jerr) == json_error_out_of_memory ||
                         jerr->text[0] == '\0');
    return j;
}

char *ctnas_jsonv_dumps(const json_t *j, size_t flags)
{
    unsigned long f0 = ctnas_mem_failures();
    char *text = json_dumps(j, flags);
    if (text != NULL && ctnas_mem_failures() != f0) {
        ctnas_free(text);
        text = NULL;
    }
    return text;
}

/* A number token's decimal digits: value = (neg ? -1 : 1) * 0.d * 10^exp,
 * d without leading or trailing zeros (n == 0: the value is zero). */
struct dec {
    int neg, n, exp;
    char d[32];
};

/* Read a token as jansson writes reals ("-12.5", "1.5e-7", "0.00012",
 * "1e300"); -1 if it is not one of at most 31 mantissa digits. */
static int dec_read(const char *t, size_t len, struct dec *x)
{
    size_t i = 0;
    int point = -1, raw = 0;
    memset(x, 0, sizeof *x);
    if (i < len && t[i] == '-')
        x->neg = 1, i++;
    for (; i < len && (isdigit((unsigned char)t[i]) || t[i] == '.'); i++) {
        if (t[i] == '.') {
            point = raw;
            continue;
        }
        if (x->n == 0 && t[i] == '0') {
            raw++; /* a leading zero: moves the point, not a digit */
            x->exp--;
            continue;
        }
        if (x->n >= (int)sizeof x->d - 1)
            return -1;
        x->d[x->n++] = t[i];
        raw++;
    }
    x->exp += point < 0 ? raw : point;
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        char *end;
        long e = strtol(t + i + 1, &end, 10);
        if (end != t + len || e < -400 || e > 400)
            return -1;
        x->exp += (int)e;
    } else if (i != len) {
        return -1;
    }
    while (x->n > 0 && x->d[x->n - 1] == '0')
        x->n--;
    return 0;
}

/* x rounded half up to p significant digits, written as a JSON real
 * (fixed from 1e-5 to below 1e16, else with an exponent; "2.0", never
 * "2") into buf of at least 48 bytes; its length. */
static size_t dec_write(const struct dec *x, int p, char *buf)
{
    char d[32];
    int n = x->n < p ? x->n : p, exp = x->exp;
    memcpy(d, x->d, (size_t)n);
    if (x->n > p && x->d[p] >= '5') {
        int k = n - 1;
        while (k >= 0 && d[k] == '9')
            d[k--] = '0';
        if (k >= 0) {
            d[k]++;
        } else { /* 9.99 -> 10.0 */
            d[0] = '1';
            n = 1;
            exp++;
        }
    }
    while (n > 1 && d[n - 1] == '0')
        n--;
    char *w = buf;
    if (x->neg)
        *w++ = '-';
    int sci = exp - 1; /* the exponent of the first digit */
    if (sci >= -5 && sci < 16) {
        if (exp <= 0) {
            *w++ = '0';
            *w++ = '.';
            for (int z = 0; z < -exp; z++)
                *w++ = '0';
            memcpy(w, d, (size_t)n);
            w += n;
        } else {
            for (int k = 0; k < exp; k++)
                *w++ = k < n ? d[k] : '0';
            *w++ = '.';
            if (n > exp) {
                memcpy(w, d + exp, (size_t)(n - exp));
                w += n - exp;
            } else {
                *w++ = '0';
            }
        }
        *w = '\0';
    } else {
        *w++ = d[0];
        if (n > 1) {
            *w++ = '.';
            memcpy(w, d + 1, (size_t)(n - 1));
            w += n - 1;
        }
        w += sprintf(w, "e%d", sci);
    }
    return (size_t)(w - buf);
}

/* The shortest form of the real token t (15 or 16 significant digits)
 * that reads back as the same double, in buf of at least 48 bytes; its
 * length, or 0 when only the 17 digits jansson wrote do.  The digits are
 * rounded from jansson's text, each candidate checked by reading it
 * back: about a third of the cost of printing it twice more. */
static size_t shortest_real(const char *t, size_t len, char *buf)
{
    struct dec x;
    if (dec_read(t, len, &x) < 0 || x.n == 0)
        return 0;
    double v = strtod(t, NULL);
    for (int p = 15; p <= 16; p++) {
        if (x.n <= p && p == 16)
            break; /* already short: 15 took it, or nothing will */
        size_t n = dec_write(&x, p, buf);
        if (strtod(buf, NULL) == v)
            return n;
    }
    return 0;
}

/* Rewrite, in place, each real of the JSON text s (written at precision
 * 17) to its shortest exact form; strings and integers are copied. */
static void shorten_reals(char *s)
{
    char *r = s, *w = s;
    while (*r != '\0') {
        if (*r == '"') {
            *w++ = *r++;
            while (*r != '\0' && *r != '"') {
                if (*r == '\\' && r[1] != '\0')
                    *w++ = *r++;
                *w++ = *r++;
            }
            if (*r == '"')
                *w++ = *r++;
            continue;
        }
        if (*r != '-' && (*r < '0' || *r > '9')) {
            *w++ = *r++;
            continue;
        }
        size_t len = strspn(r, "0123456789+-.eE");
        char buf[48];
        size_t n = len;
        /* A real has a point or an exponent (looked for in the token
         * only: a scan past it would make long integer arrays
         * quadratic). */
        int real = 0;
        for (size_t k = 0; k < len && !real; k++)
            real = r[k] == '.' || r[k] == 'e' || r[k] == 'E';
        if (real)
            n = shortest_real(r, len, buf);
        /* w trails r, so the token's own bytes may be overwritten only
         * once they are no longer read. */
        if (n > 0 && n < len) {
            memcpy(w, buf, n);
        } else {
            n = len; /* keep jansson's: never longer */
            memmove(w, r, len);
        }
        w += n;
        r += len;
    }
    *w = '\0';
}

char *ctnas_jsonv_dumps_exact(const json_t *j, size_t flags)
{
    flags &= ~(size_t)JSON_REAL_PRECISION(31);
    char *text = ctnas_jsonv_dumps(j, flags | JSON_REAL_PRECISION(17));
    if (text != NULL)
        shorten_reals(text);
    return text;
}
