/* Columnar scan of clean prediction events: one C pass over a batch's bytes into columns.
 *
 * A Scanner is made per model from its schema (numeric and categorical feature names, the slice
 * dimensions that are not features). scan() reads each message - one JSON object or a batch
 * envelope [{...},...] - straight into row-major columns: the features and the contract's numbers
 * as doubles, every string field as a code into a per-batch dictionary of its distinct values
 * (first appearance order), the prediction ids as str. It accepts only what it can decide
 * exactly; anything else sends its whole message back to the caller's other paths ("rest"):
 * a string with an escape, a null/absent/duplicate/unknown feature, a value of another type, a
 * number beyond the exact range (non-finite, integers of more than 18 digits), an empty or too
 * long id, a string over the byte budget, invalid UTF-8, another model, nesting deeper than 32,
 * trailing bytes, anything that is not bytes. Numbers are correctly rounded (exact fast path,
 * else Python's own dtoa), as orjson and msgspec round them.
 *
 * No numpy headers: columns come back as bytearrays the Python side views with numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct { const char *p; Py_ssize_t n; } Span;

/* ------------------------------------------------------------------ growable buffers */
typedef struct { char *d; size_t len, cap; } Buf;

/* room for `total` bytes */
static int buf_need(Buf *b, size_t total) {
    if (total <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < total) cap *= 2;
    char *d = PyMem_Realloc(b->d, cap);
    if (!d) { PyErr_NoMemory(); return -1; }
    b->d = d; b->cap = cap;
    return 0;
}

static int buf_grow(Buf *b, size_t more) { return buf_need(b, b->len + more); }

/* ------------------------------------------------------------------ dictionaries */
typedef struct { Span *ent; uint64_t *hash; Py_ssize_t n, cap; int32_t *tab; size_t tcap; } Dict;

static uint64_t fnv(const char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 1099511628211ULL; }
    return h;
}

static int dict_rehash(Dict *d, size_t tcap) {
    int32_t *tab = PyMem_Calloc(tcap, sizeof(int32_t));
    if (!tab) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < d->n; i++) {
        size_t j = d->hash[i] & (tcap - 1);
        while (tab[j]) j = (j + 1) & (tcap - 1);
        tab[j] = (int32_t)(i + 1);
    }
    PyMem_Free(d->tab);
    d->tab = tab; d->tcap = tcap;
    return 0;
}

/* code of the value (adding it), -2 on memory error */
static int32_t dict_code(Dict *d, const char *p, Py_ssize_t n) {
    uint64_t h = fnv(p, n);
    if (d->tcap == 0 && dict_rehash(d, 64) < 0) return -2;
    size_t j = h & (d->tcap - 1);
    for (int32_t t; (t = d->tab[j]); j = (j + 1) & (d->tcap - 1)) {
        Span *s = &d->ent[t - 1];
        if (d->hash[t - 1] == h && s->n == n && memcmp(s->p, p, n) == 0) return t - 1;
    }
    if (d->n == d->cap) {
        Py_ssize_t cap = d->cap ? 2 * d->cap : 16;
        Span *e = PyMem_Realloc(d->ent, cap * sizeof(Span));
        if (!e) { PyErr_NoMemory(); return -2; }
        d->ent = e;
        uint64_t *hh = PyMem_Realloc(d->hash, cap * sizeof(uint64_t));
        if (!hh) { PyErr_NoMemory(); return -2; }
        d->hash = hh; d->cap = cap;
    }
    d->ent[d->n].p = p; d->ent[d->n].n = n; d->hash[d->n] = h;
    d->tab[j] = (int32_t)(++d->n);
    if ((size_t)d->n * 2 > d->tcap && dict_rehash(d, d->tcap * 2) < 0) return -2;
    return (int32_t)(d->n - 1);
}

static void dict_free(Dict *d) { PyMem_Free(d->ent); PyMem_Free(d->hash); PyMem_Free(d->tab); }

/* ------------------------------------------------------------------ lexing */
#define BAIL (-1)
#define FAIL (-2) /* a Python error is set */

static inline const char *ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static int utf8_ok(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int k; unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c == 0xE0) { k = 2; lo = 0xA0; }
        else if (c >= 0xE1 && c <= 0xEC) k = 2;
        else if (c == 0xED) { k = 2; hi = 0x9F; } /* no surrogates */
        else if (c >= 0xEE && c <= 0xEF) k = 2;
        else if (c == 0xF0) { k = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) k = 3;
        else if (c == 0xF4) { k = 3; hi = 0x8F; }
        else return 0;
        if (i + k >= n) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (int j = 2; j <= k; j++) if (s[i + j] < 0x80 || s[i + j] > 0xBF) return 0;
        i += k + 1;
    }
    return 1;
}

static inline int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* a string at *pp (on its opening quote); escapes only when esc (then the span is raw) */
static int str_span(const char **pp, const char *e, Span *out, int esc) {
    const char *p = *pp + 1, *s = p;
    int high = 0;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c == '\\') {
            if (!esc || p + 1 >= e) return BAIL;
            char x = p[1];
            if (x == 'u') {
                if (p + 5 >= e) return BAIL;
                int v = 0;
                for (int j = 2; j < 6; j++) { int h = hexv(p[j]); if (h < 0) return BAIL; v = v * 16 + h; }
                if (v >= 0xD800 && v <= 0xDFFF) return BAIL; /* surrogates: the other paths decide */
                p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", x) || x == 0) return BAIL;
            p += 2;
            continue;
        }
        if (c < 0x20) return BAIL;
        if (c >= 0x80) high = 1;
        p++;
    }
    if (p >= e) return BAIL;
    out->p = s; out->n = p - s;
    if (high && !utf8_ok((const unsigned char *)s, p - s)) return BAIL;
    *pp = p + 1;
    return 0;
}

static const double P10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* a JSON number at *pp; BAIL when not one, not finite, or an integer of more than 18 digits */
static int num(const char **pp, const char *e, double *out) {
    const char *p = *pp, *start = p;
    int neg = 0, sig = 0, trunc = 0, isint = 1, intdig = 0;
    uint64_t m = 0;
    long ex = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e) return BAIL;
    if (*p == '0') { p++; intdig = 1; }
    else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            if (sig < 19) { m = m * 10 + (uint64_t)(*p - '0'); if (m) sig++; } else { ex++; trunc = 1; }
            intdig++; p++;
        }
    } else return BAIL;
    if (p < e && *p == '.') {
        isint = 0; p++;
        if (p >= e || *p < '0' || *p > '9') return BAIL;
        while (p < e && *p >= '0' && *p <= '9') {
            if (sig < 19) { m = m * 10 + (uint64_t)(*p - '0'); if (m) sig++; ex--; } else trunc = 1;
            p++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        isint = 0; p++;
        int es = 1; long ev = 0;
        if (p < e && (*p == '+' || *p == '-')) { es = *p == '-' ? -1 : 1; p++; }
        if (p >= e || *p < '0' || *p > '9') return BAIL;
        while (p < e && *p >= '0' && *p <= '9') { if (ev < 100000) ev = ev * 10 + (*p - '0'); p++; }
        ex += es * ev;
    }
    if (isint && intdig > 18) return BAIL;
    double v;
    if (m == 0) v = (neg && !isint) ? -0.0 : 0.0;
    else if (!trunc && m <= (1ULL << 53) && ex >= -22 && ex <= 22) {
        v = (double)m;
        v = ex < 0 ? v / P10[-ex] : v * P10[ex];
        if (neg) v = -v;
    } else {
        char tmp[64];
        if (p - start >= (Py_ssize_t)sizeof tmp) return BAIL;
        memcpy(tmp, start, p - start);
        tmp[p - start] = 0;
        v = PyOS_string_to_double(tmp, NULL, NULL);
        if (v == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return BAIL; }
    }
    if (!(v - v == 0.0)) return BAIL; /* inf (overflow) */
    *out = v;
    *pp = p;
    return 0;
}

static int lit(const char **pp, const char *e, const char *w, int n) {
    if (e - *pp < n || memcmp(*pp, w, n) != 0) return BAIL;
    *pp += n;
    return 0;
}

/* any JSON value (validated, thrown away) */
static int skip(const char **pp, const char *e, int depth) {
    const char *p = *pp;
    if (p >= e || depth > 32) return BAIL;
    Span sp; double d;
    switch (*p) {
    case '"': if (str_span(&p, e, &sp, 1) < 0) return BAIL; break;
    case 't': if (lit(&p, e, "true", 4) < 0) return BAIL; break;
    case 'f': if (lit(&p, e, "false", 5) < 0) return BAIL; break;
    case 'n': if (lit(&p, e, "null", 4) < 0) return BAIL; break;
    case '{': case '[': {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = ws(p + 1, e);
        if (p < e && *p == close) { p++; break; }
        for (;;) {
            if (obj) {
                if (p >= e || *p != '"' || str_span(&p, e, &sp, 1) < 0) return BAIL;
                p = ws(p, e);
                if (p >= e || *p != ':') return BAIL;
                p = ws(p + 1, e);
            }
            if (skip(&p, e, depth + 1) < 0) return BAIL;
            p = ws(p, e);
            if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
            if (p < e && *p == close) { p++; break; }
            return BAIL;
        }
        break;
    }
    default:
        if (num(&p, e, &d) < 0) return BAIL;
    }
    *pp = p;
    return 0;
}

/* ------------------------------------------------------------------ the scanner */
enum { K_ID, K_MODEL, K_TS, K_FEATURES, K_SCORE, K_PREDICTION, K_THRESHOLD, K_LATENCY, K_FALLBACK,
       K_VERSION, K_DECISION, K_BASELINE, K_OVERRIDE, K_SLICES, K_N };
static const char *KEYS[K_N] = {"prediction_id", "model", "ts", "features", "score", "prediction", "threshold",
                                "latency_ms", "fallback", "model_version", "decision", "baseline_decision",
                                "override", "slices"};
#define N_FLOATS 6 /* score, prediction, threshold, latency_ms, fallback, ts after the features */
#define N_STRS 4   /* model_version, decision, baseline_decision, override after the categories */

typedef struct {
    PyObject_HEAD
    PyObject *names;  /* tuple of bytes: numeric features, categorical features, slice dims */
    PyObject *model;  /* bytes */
    Py_ssize_t nn, nc, ns;
    Span *name;       /* into names */
    int32_t *ftab;    /* feature name hash table: index + 1 */
    size_t ftcap;
    int8_t next[K_N + 1]; /* the top-level key last seen after each one (K_N: the object's start) */
} Scanner;

typedef struct {
    Scanner *s;
    Py_ssize_t max_id, max_value, nd, ni;
    Buf dbl, ints, ids, tsx, tsrow;
    Dict *dict;       /* nc + N_STRS + ns */
    uint8_t *seen;    /* nn + nc + ns */
} Scan;

static Py_ssize_t feature_index(Scanner *s, const char *p, Py_ssize_t n, Py_ssize_t guess) {
    Py_ssize_t nf = s->nn + s->nc;
    if (guess < nf && s->name[guess].n == n && memcmp(s->name[guess].p, p, n) == 0) return guess;
    size_t j = fnv(p, n) & (s->ftcap - 1);
    for (int32_t t; (t = s->ftab[j]); j = (j + 1) & (s->ftcap - 1)) {
        Span *x = &s->name[t - 1];
        if (x->n == n && memcmp(x->p, p, n) == 0) return t - 1;
    }
    return -1;
}

static Py_ssize_t KEYLEN[K_N];

/* which contract field a top-level key is (-1: another one); `guess` is tried first (producers
   send their fields in one order: the scanner learns which key follows which) */
static int top_key(const char *p, Py_ssize_t n, int guess) {
    if (guess < K_N && KEYLEN[guess] == n && memcmp(KEYS[guess], p, n) == 0) return guess;
    for (int k = 0; k < K_N; k++)
        if (KEYLEN[k] == n && memcmp(KEYS[k], p, n) == 0) return k;
    return -1;
}

/* a string value of a column into its dictionary (or null: -1); BAIL/FAIL */
static int str_value(Scan *c, const char **pp, const char *e, int col, int32_t *code) {
    const char *p = *pp;
    if (p < e && *p == 'n') { if (lit(pp, e, "null", 4) < 0) return BAIL; *code = -1; return 0; }
    Span sp;
    if (p >= e || *p != '"' || str_span(&p, e, &sp, 0) < 0 || sp.n > c->max_value) return BAIL;
    int32_t k = dict_code(&c->dict[col], sp.p, sp.n);
    if (k == -2) return FAIL;
    *code = k;
    *pp = p;
    return 0;
}

static int opt_num(const char **pp, const char *e, double *out) {
    if (*pp < e && **pp == 'n') return lit(pp, e, "null", 4);
    return num(pp, e, out);
}

static int features(Scan *c, const char **pp, const char *e, double *drow, int32_t *irow) {
    Scanner *s = c->s;
    const char *p = *pp;
    Py_ssize_t nf = s->nn + s->nc, got = 0, guess = 0;
    if (p >= e || *p != '{') return BAIL;
    memset(c->seen, 0, nf);
    p = ws(p + 1, e);
    if (p < e && *p == '}') p++;
    else for (;;) {
        Span k;
        if (p >= e || *p != '"' || str_span(&p, e, &k, 0) < 0) return BAIL;
        Py_ssize_t j = feature_index(s, k.p, k.n, guess);
        if (j < 0 || c->seen[j]) return BAIL; /* an unknown or repeated feature */
        c->seen[j] = 1; got++; guess = j + 1;
        p = ws(p, e);
        if (p >= e || *p != ':') return BAIL;
        p = ws(p + 1, e);
        if (j < s->nn) { if (p >= e || *p == 'n' || num(&p, e, &drow[j]) < 0) return BAIL; }
        else {
            int32_t code;
            if (p >= e || *p != '"') return BAIL; /* null or another type: the other paths count it */
            int r = str_value(c, &p, e, (int)(j - s->nn), &code);
            if (r < 0) return r;
            irow[j - s->nn] = code;
        }
        p = ws(p, e);
        if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
        if (p < e && *p == '}') { p++; break; }
        return BAIL;
    }
    if (got != nf) return BAIL; /* an absent feature */
    *pp = p;
    return 0;
}

static int slices(Scan *c, const char **pp, const char *e, int32_t *irow) {
    Scanner *s = c->s;
    const char *p = *pp;
    if (p < e && *p == 'n') return lit(pp, e, "null", 4);
    if (p >= e || *p != '{') return BAIL;
    uint8_t *seen = c->seen + s->nn + s->nc;
    memset(seen, 0, s->ns);
    p = ws(p + 1, e);
    if (p < e && *p == '}') { *pp = p + 1; return 0; }
    for (;;) {
        Span k;
        if (p >= e || *p != '"' || str_span(&p, e, &k, 0) < 0) return BAIL;
        Py_ssize_t j = -1;
        for (Py_ssize_t i = 0; i < s->ns; i++) {
            Span *x = &s->name[s->nn + s->nc + i];
            if (x->n == k.n && memcmp(x->p, k.p, k.n) == 0) { j = i; break; }
        }
        p = ws(p, e);
        if (p >= e || *p != ':') return BAIL;
        p = ws(p + 1, e);
        if (j >= 0) {
            if (seen[j]) return BAIL;
            seen[j] = 1;
            int r = str_value(c, &p, e, (int)(s->nc + N_STRS + j), &irow[s->nc + N_STRS + j]);
            if (r < 0) return r;
        } else {  /* another key: ignored when its value is a scalar */
            if (p >= e || *p == '{' || *p == '[' || skip(&p, e, 1) < 0) return BAIL;
        }
        p = ws(p, e);
        if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
        if (p < e && *p == '}') { p++; break; }
        return BAIL;
    }
    *pp = p;
    return 0;
}

/* one event object at *pp into the row being written; BAIL / FAIL */
static int event(Scan *c, const char **pp, const char *e, Py_ssize_t row) {
    Scanner *s = c->s;
    double *drow = (double *)c->dbl.d + row * c->nd;
    int32_t *irow = (int32_t *)c->ints.d + row * c->ni;
    const char *p = *pp;
    for (Py_ssize_t i = 0; i < c->nd; i++) drow[i] = Py_NAN;
    for (Py_ssize_t i = 0; i < c->ni; i++) irow[i] = -1;
    if (p >= e || *p != '{') return BAIL;
    unsigned seen = 0;
    int prev = K_N;
    Span id = {NULL, 0}, tstext = {NULL, 0};
    p = ws(p + 1, e);
    if (p < e && *p == '}') return BAIL;
    for (;;) {
        Span k;
        if (p >= e || *p != '"' || str_span(&p, e, &k, 0) < 0) return BAIL;
        int key = top_key(k.p, k.n, s->next[prev]);
        if (key >= 0) {
            s->next[prev] = (int8_t)key;
            prev = key;
        }
        p = ws(p, e);
        if (p >= e || *p != ':') return BAIL;
        p = ws(p + 1, e);
        if (key >= 0) {
            if (seen & (1u << key)) return BAIL;
            seen |= 1u << key;
        }
        int r = 0;
        double *f = drow + s->nn;
        switch (key) {
        case K_ID:
            if (p >= e || *p != '"' || str_span(&p, e, &id, 0) < 0 || id.n == 0 || id.n > c->max_id) return BAIL;
            break;
        case K_MODEL: {
            Span m;
            if (p >= e || *p != '"' || str_span(&p, e, &m, 0) < 0) return BAIL;
            if (m.n != PyBytes_GET_SIZE(s->model) || memcmp(m.p, PyBytes_AS_STRING(s->model), m.n) != 0) return BAIL;
            break;
        }
        case K_TS:
            if (p < e && *p == '"') {
                if (str_span(&p, e, &tstext, 0) < 0 || tstext.n == 0 || tstext.n > 64) return BAIL;
            } else if (num(&p, e, &f[5]) < 0) return BAIL;
            break;
        case K_FEATURES: r = features(c, &p, e, drow, irow); break;
        case K_SCORE: r = opt_num(&p, e, &f[0]); break;
        case K_PREDICTION: r = opt_num(&p, e, &f[1]); break;
        case K_THRESHOLD: r = opt_num(&p, e, &f[2]); break;
        case K_LATENCY: r = opt_num(&p, e, &f[3]); break;
        case K_FALLBACK:
            if (p < e && *p == 't') { r = lit(&p, e, "true", 4); f[4] = 1.0; }
            else if (p < e && *p == 'f') { r = lit(&p, e, "false", 5); f[4] = 0.0; }
            else r = lit(&p, e, "null", 4);
            break;
        case K_VERSION: case K_DECISION: case K_BASELINE: case K_OVERRIDE: {
            int j = key - K_VERSION;
            r = str_value(c, &p, e, (int)(s->nc + j), &irow[s->nc + j]);
            break;
        }
        case K_SLICES: r = slices(c, &p, e, irow); break;
        default: r = skip(&p, e, 1);
        }
        if (r < 0) return r;
        p = ws(p, e);
        if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
        if (p < e && *p == '}') { p++; break; }
        return BAIL;
    }
    unsigned need = (1u << K_ID) | (1u << K_MODEL) | (1u << K_TS) | (1u << K_FEATURES);
    if ((seen & need) != need) return BAIL;
    if (buf_need(&c->ids, (size_t)(row + 1) * sizeof(Span)) < 0) return FAIL;
    ((Span *)c->ids.d)[row] = id;
    c->ids.len = (row + 1) * sizeof(Span);
    if (tstext.p) {
        if (buf_grow(&c->tsx, sizeof(Span)) < 0 || buf_grow(&c->tsrow, sizeof(int64_t)) < 0) return FAIL;
        ((Span *)c->tsx.d)[c->tsx.len / sizeof(Span)] = tstext;
        ((int64_t *)c->tsrow.d)[c->tsrow.len / sizeof(int64_t)] = row;
        c->tsx.len += sizeof(Span);
        c->tsrow.len += sizeof(int64_t);
    }
    *pp = p;
    return 0;
}

static int row_alloc(Scan *c, Py_ssize_t rows) {
    if (buf_need(&c->dbl, (size_t)((rows + 1) * c->nd) * sizeof(double)) < 0) return FAIL;
    if (buf_need(&c->ints, (size_t)((rows + 1) * c->ni) * sizeof(int32_t) + 1) < 0) return FAIL;
    return 0;
}

/* one message: its rows, or BAIL (the rows written are dropped by the caller) */
static int message(Scan *c, const char *p, const char *e, Py_ssize_t *rows, Buf *item) {
    p = ws(p, e);
    if (p >= e) return BAIL;
    if (*p == '{') {
        if (row_alloc(c, *rows) < 0) return FAIL;
        int r = event(c, &p, e, *rows);
        if (r < 0) return r;
        if (ws(p, e) != e) return BAIL;
        if (buf_need(item, (size_t)(*rows + 1) * sizeof(int64_t)) < 0) return FAIL;
        ((int64_t *)item->d)[*rows] = -1;
        (*rows)++;
        return 0;
    }
    if (*p != '[') return BAIL;
    p = ws(p + 1, e);
    Py_ssize_t k = 0, first = *rows;
    for (;;) {
        if (row_alloc(c, *rows) < 0 || buf_need(item, (size_t)(*rows + 1) * sizeof(int64_t)) < 0) return FAIL;
        int r = event(c, &p, e, *rows);
        if (r < 0) return r;
        ((int64_t *)item->d)[*rows] = k++;
        (*rows)++;
        p = ws(p, e);
        if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
        if (p < e && *p == ']') { p++; break; }
        return BAIL;
    }
    if (ws(p, e) != e) return BAIL;
    if (k == 1) ((int64_t *)item->d)[first] = -1;
    return 0;
}

static PyObject *bytearray_of(Buf *b) { return PyByteArray_FromStringAndSize(b->d ? b->d : "", (Py_ssize_t)b->len); }

static PyObject *span_str(Span *x) { return PyUnicode_DecodeUTF8(x->p, x->n, "strict"); }

static PyObject *Scanner_scan(Scanner *s, PyObject *args) {
    PyObject *raws;
    Py_ssize_t max_id, max_value;
    if (!PyArg_ParseTuple(args, "Onn", &raws, &max_id, &max_value)) return NULL;
    if (!s->name || !s->model) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner was not initialised");
        return NULL;
    }
    /* a tuple holds its messages: the spans into them stay valid whatever runs during the scan
       (a garbage collection at an allocation may run arbitrary code that changes a list) */
    PyObject *seq = PySequence_Tuple(raws);
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **it = PySequence_Fast_ITEMS(seq);
    Scan c = {0};
    c.s = s; c.max_id = max_id; c.max_value = max_value;
    c.nd = s->nn + N_FLOATS; c.ni = s->nc + N_STRS + s->ns;
    Py_ssize_t ndict = c.ni, rows = 0;
    c.dict = PyMem_Calloc(ndict + 1, sizeof(Dict));
    c.seen = PyMem_Calloc(s->nn + s->nc + s->ns + 1, 1);
    Buf msg = {0}, item = {0};
    PyObject *rest = PyList_New(0), *out = NULL;
    if (!c.dict || !c.seen || !rest) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = it[i];
        Py_ssize_t before = rows, ts_before = c.tsx.len;
        int res = BAIL;
        if (PyBytes_Check(r)) res = message(&c, PyBytes_AS_STRING(r), PyBytes_AS_STRING(r) + PyBytes_GET_SIZE(r), &rows, &item);
        if (res == FAIL) goto done;
        if (res == BAIL) {
            rows = before;
            c.tsx.len = ts_before;
            c.tsrow.len = ts_before / sizeof(Span) * sizeof(int64_t);
            c.ids.len = rows * sizeof(Span);
            PyObject *ix = PyLong_FromSsize_t(i);
            if (!ix || PyList_Append(rest, ix) < 0) { Py_XDECREF(ix); goto done; }
            Py_DECREF(ix);
            continue;
        }
        if (buf_grow(&msg, (rows - before) * sizeof(int64_t)) < 0) goto done;
        for (Py_ssize_t j = before; j < rows; j++) ((int64_t *)msg.d)[j] = i;
        msg.len = rows * sizeof(int64_t);
    }
    c.dbl.len = rows * c.nd * sizeof(double);
    c.ints.len = rows * c.ni * sizeof(int32_t);
    item.len = rows * sizeof(int64_t);
    PyObject *ids = PyList_New(rows), *dicts = PyList_New(ndict);
    PyObject *tsn = PyList_New((Py_ssize_t)(c.tsx.len / sizeof(Span)));
    if (!ids || !dicts || !tsn) { Py_XDECREF(ids); Py_XDECREF(dicts); Py_XDECREF(tsn); goto done; }
    int bad = 0;
    for (Py_ssize_t j = 0; j < rows && !bad; j++) {
        PyObject *u = span_str(&((Span *)c.ids.d)[j]);
        if (!u) bad = 1; else PyList_SET_ITEM(ids, j, u);
    }
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(tsn) && !bad; j++) {
        PyObject *u = span_str(&((Span *)c.tsx.d)[j]);
        if (!u) bad = 1; else PyList_SET_ITEM(tsn, j, u);
    }
    for (Py_ssize_t d = 0; d < ndict && !bad; d++) {
        PyObject *l = PyList_New(c.dict[d].n);
        if (!l) { bad = 1; break; }
        PyList_SET_ITEM(dicts, d, l);
        for (Py_ssize_t j = 0; j < c.dict[d].n; j++) {
            PyObject *u = span_str(&c.dict[d].ent[j]);
            if (!u) { bad = 1; break; }
            PyList_SET_ITEM(l, j, u);
        }
    }
    if (bad) { Py_DECREF(ids); Py_DECREF(dicts); Py_DECREF(tsn); goto done; }
    out = Py_BuildValue("(nNNNNNNNNN)", rows, bytearray_of(&c.dbl), bytearray_of(&c.ints), bytearray_of(&msg),
                        bytearray_of(&item), ids, dicts, bytearray_of(&c.tsrow), tsn, rest);
    rest = NULL;
done:
    Py_XDECREF(rest);
    Py_DECREF(seq);
    for (Py_ssize_t d = 0; c.dict && d < ndict; d++) dict_free(&c.dict[d]);
    PyMem_Free(c.dict); PyMem_Free(c.seen);
    PyMem_Free(c.dbl.d); PyMem_Free(c.ints.d); PyMem_Free(c.ids.d); PyMem_Free(c.tsx.d); PyMem_Free(c.tsrow.d);
    PyMem_Free(msg.d); PyMem_Free(item.d);
    return out;
}

static int Scanner_init(Scanner *s, PyObject *args, PyObject *kw) {
    PyObject *model, *names;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Scanner takes positional arguments only");
        return -1;
    }
    Py_ssize_t nn, nc, ns;
    if (!PyArg_ParseTuple(args, "SO!nnn", &model, &PyTuple_Type, &names, &nn, &nc, &ns)) return -1;
    if (nn < 0 || nc < 0 || ns < 0 || PyTuple_GET_SIZE(names) != nn + nc + ns) {
        PyErr_SetString(PyExc_ValueError, "names must hold nn + nc + ns names");
        return -1;
    }
    Py_XSETREF(s->model, Py_NewRef(model));
    Py_XSETREF(s->names, Py_NewRef(names));
    s->nn = nn; s->nc = nc; s->ns = ns;
    for (int k = 0; k <= K_N; k++) s->next[k] = (int8_t)(k + 1 < K_N ? k + 1 : 0);
    PyMem_Free(s->name); PyMem_Free(s->ftab);
    s->name = PyMem_Calloc(nn + nc + ns + 1, sizeof(Span));
    s->ftcap = 16;
    while (s->ftcap < (size_t)(nn + nc) * 2 + 2) s->ftcap *= 2;
    s->ftab = PyMem_Calloc(s->ftcap, sizeof(int32_t));
    if (!s->name || !s->ftab) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < nn + nc + ns; i++) {
        PyObject *b = PyTuple_GET_ITEM(names, i);
        if (!PyBytes_Check(b)) { PyErr_SetString(PyExc_TypeError, "names must be bytes"); return -1; }
        s->name[i].p = PyBytes_AS_STRING(b); s->name[i].n = PyBytes_GET_SIZE(b);
        if (i < nn + nc) {
            size_t j = fnv(s->name[i].p, s->name[i].n) & (s->ftcap - 1);
            while (s->ftab[j]) j = (j + 1) & (s->ftcap - 1);
            s->ftab[j] = (int32_t)(i + 1);
        }
    }
    return 0;
}

static void Scanner_dealloc(Scanner *s) {
    Py_XDECREF(s->model); Py_XDECREF(s->names);
    PyMem_Free(s->name); PyMem_Free(s->ftab);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS,
     "scan(raws, max_id_bytes, max_value_bytes) -> (rows, doubles, ints, msg, item, ids, dicts, ts_rows, ts_text, rest)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "detector.core.inputs._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
    .tp_doc = "Scanner(model: bytes, names: tuple[bytes, ...], n_numeric, n_categorical, n_slice_dims)",
};

static struct PyModuleDef scanmodule = {
    PyModuleDef_HEAD_INIT, .m_name = "_scan", .m_doc = "Columnar scan of clean prediction events.", .m_size = -1,
};

PyMODINIT_FUNC PyInit__scan(void) {
    for (int k = 0; k < K_N; k++) KEYLEN[k] = (Py_ssize_t)strlen(KEYS[k]);
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scanmodule);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) { Py_DECREF(m); return NULL; }
    if (PyModule_AddIntConstant(m, "N_FLOATS", N_FLOATS) < 0 || PyModule_AddIntConstant(m, "N_STRS", N_STRS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
