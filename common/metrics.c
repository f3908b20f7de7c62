/*
 * metrics.c: the metric registry of metrics.h and its Prometheus text form.
 *
 * Values are doubles kept as their bit patterns in 64-bit atomics and
 * updated with compare-and-swap, so an update never takes a lock and never
 * loses an increment. Histogram buckets hold per-bucket (not cumulative)
 * counts; rendering accumulates them and derives _count from the same
 * snapshot, so le="+Inf" always equals _count even while observations race
 * with a scrape.
 *
 * Locks: the registry mutex guards the family array; each family's mutex
 * guards its child array. Neither is taken on the update path. Families and
 * series are only ever added, never removed before lb_metrics_free(), which
 * is what makes handing out bare pointers safe.
 *
 * Callers: daemons and libraries declare metrics at start-up; the HTTP
 * server renders the registry for /metrics.
 */
#include "metrics.h"
#include "errors.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 16

typedef enum metric_kind {
    KIND_COUNTER,
    KIND_GAUGE,
    KIND_HISTOGRAM,
    KIND_GAUGE_FN,
} metric_kind;

struct family;

typedef struct series {
    struct family *family;
    char **label_values;       /* family->nlabels strings, owned; NULL on a family handle */
    bool is_family;            /* the handle of a labelled family: carries no value */
    _Atomic uint64_t value;    /* counter, gauge: double bits */
    _Atomic uint64_t sum;      /* histogram: double bits */
    _Atomic uint64_t *buckets; /* histogram: nbounds + 1 counts, last is +Inf */
} series;

/* The public handle types are the series itself; a pointer to one of these
 * points at its only member. */
struct lb_counter {
    series s;
};
struct lb_gauge {
    series s;
};
struct lb_histogram {
    series s;
};

typedef struct family {
    char *name;
    char *help;
    metric_kind kind;
    char **label_names;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    double (*read)(void *arg);
    void *read_arg;
    series root; /* the series when nlabels == 0, else the family handle */
    pthread_mutex_t lock;
    series **children;
    size_t nchildren;
    size_t cap;
} family;

struct lb_metrics {
    pthread_mutex_t lock;
    family **families;
    size_t n;
    size_t cap;
};

static const char *const kind_names[] = {"counter", "gauge", "histogram", "gauge"};

/* ---- atomics on doubles ---- */

static uint64_t
dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double
bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static void
atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- registry ---- */

int
lb_metrics_new(lb_metrics **out)
{
    lb_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

static void
series_free_contents(series *s, size_t nlabels)
{
    if (s->label_values) {
        for (size_t i = 0; i < nlabels; i++)
            free(s->label_values[i]);
        free(s->label_values);
    }
    free(s->buckets);
}

static void
family_free(family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nchildren; i++) {
        series_free_contents(f->children[i], f->nlabels);
        free(f->children[i]);
    }
    free(f->children);
    series_free_contents(&f->root, f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void
lb_metrics_free(lb_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        family_free(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static lb_metrics *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void
default_init(void)
{
    if (lb_metrics_new(&default_registry) != 0)
        abort(); /* out of memory at start-up: nothing sensible to do */
}

lb_metrics *
lb_metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_registry;
}

/* ---- declaring ---- */

static bool
valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool
valid_label_name(const char *s, size_t len)
{
    if (len == 0 || (len >= 2 && s[0] == '_' && s[1] == '_'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Split "a, b,c" into names[] (owned strings). 0, -EINVAL, -ENOMEM. */
static int
parse_label_names(const char *spec, bool histogram, char ***names_out, size_t *n_out)
{
    *names_out = NULL;
    *n_out = 0;
    if (!spec || !*spec)
        return 0;
    char **names = calloc(MAX_LABELS, sizeof(char *));
    if (!names)
        return -ENOMEM;
    size_t n = 0;
    int rc = 0;
    const char *p = spec;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ' ')
            end++;
        size_t len = (size_t)(end - p);
        if (n == MAX_LABELS || !valid_label_name(p, len) ||
            (histogram && len == 2 && memcmp(p, "le", 2) == 0)) {
            rc = -EINVAL;
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (strlen(names[i]) == len && memcmp(names[i], p, len) == 0)
                rc = -EINVAL;
        if (rc != 0)
            break;
        if (!(names[n] = strndup(p, len))) {
            rc = -ENOMEM;
            break;
        }
        n++;
        while (*end == ' ')
            end++;
        if (*end == '\0')
            break;
        if (*end != ',') {
            rc = -EINVAL;
            break;
        }
        p = end + 1;
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    *names_out = names;
    *n_out = n;
    return 0;
}

static bool
same_declaration(const family *f, metric_kind kind, char **names, size_t nlabels,
                 const double *bounds, size_t nbounds)
{
    if (f->kind != kind || f->nlabels != nlabels || f->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->label_names[i], names[i]) != 0)
            return false;
    for (size_t i = 0; i < nbounds; i++)
        if (f->bounds[i] != bounds[i])
            return false;
    return kind != KIND_GAUGE_FN; /* a callback gauge is never shared */
}

static int
series_init(series *s, family *f)
{
    s->family = f;
    atomic_init(&s->value, dbits(0.0));
    atomic_init(&s->sum, dbits(0.0));
    if (f->kind == KIND_HISTOGRAM && !s->is_family) {
        s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets));
        if (!s->buckets)
            return -ENOMEM;
        for (size_t i = 0; i <= f->nbounds; i++)
            atomic_init(&s->buckets[i], 0);
    }
    return 0;
}

static int
declare(lb_metrics *m, metric_kind kind, const char *name, const char *help,
        const char *label_names, const double *bounds, size_t nbounds, double (*read)(void *arg),
        void *read_arg, series **out)
{
    assert(m && out);
    if (!m || !valid_metric_name(name))
        return -EINVAL;
    if (kind == KIND_HISTOGRAM) {
        if (!bounds && nbounds > 0)
            return -EINVAL;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                return -EINVAL;
    }
    char **names;
    size_t nlabels;
    int rc = parse_label_names(label_names, kind == KIND_HISTOGRAM, &names, &nlabels);
    if (rc != 0)
        return rc;

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        family *f = m->families[i];
        if (strcmp(f->name, name) != 0)
            continue;
        rc = same_declaration(f, kind, names, nlabels, bounds, nbounds) ? 0 : LB_EEXIST;
        if (rc == 0)
            *out = &f->root;
        pthread_mutex_unlock(&m->lock);
        for (size_t j = 0; j < nlabels; j++)
            free(names[j]);
        free(names);
        return rc;
    }

    family *f = calloc(1, sizeof(*f));
    rc = -ENOMEM;
    if (!f)
        goto fail;
    pthread_mutex_init(&f->lock, NULL);
    f->kind = kind;
    f->label_names = names;
    f->nlabels = nlabels;
    names = NULL;
    if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : "")))
        goto fail;
    if (nbounds > 0) {
        if (!(f->bounds = malloc(nbounds * sizeof(double))))
            goto fail;
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
    }
    f->nbounds = nbounds;
    f->read = read;
    f->read_arg = read_arg;
    f->root.is_family = nlabels > 0;
    if ((rc = series_init(&f->root, f)) != 0)
        goto fail;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        family **grown = realloc(m->families, cap * sizeof(*grown));
        rc = -ENOMEM;
        if (!grown)
            goto fail;
        m->families = grown;
        m->cap = cap;
    }
    m->families[m->n++] = f;
    *out = &f->root;
    pthread_mutex_unlock(&m->lock);
    return 0;

fail:
    pthread_mutex_unlock(&m->lock);
    if (names) {
        for (size_t j = 0; j < nlabels; j++)
            free(names[j]);
        free(names);
    }
    family_free(f);
    return rc;
}

int
lb_metrics_counter(lb_metrics *m, const char *name, const char *help, const char *label_names,
                   lb_counter **out)
{
    series *s;
    int rc = declare(m, KIND_COUNTER, name, help, label_names, NULL, 0, NULL, NULL, &s);
    if (rc == 0)
        *out = (lb_counter *)s;
    return rc;
}

int
lb_metrics_gauge(lb_metrics *m, const char *name, const char *help, const char *label_names,
                 lb_gauge **out)
{
    series *s;
    int rc = declare(m, KIND_GAUGE, name, help, label_names, NULL, 0, NULL, NULL, &s);
    if (rc == 0)
        *out = (lb_gauge *)s;
    return rc;
}

int
lb_metrics_histogram(lb_metrics *m, const char *name, const char *help, const char *label_names,
                     const double *bounds, size_t nbounds, lb_histogram **out)
{
    series *s;
    int rc = declare(m, KIND_HISTOGRAM, name, help, label_names, bounds, nbounds, NULL, NULL, &s);
    if (rc == 0)
        *out = (lb_histogram *)s;
    return rc;
}

int
lb_metrics_gauge_fn(lb_metrics *m, const char *name, const char *help, double (*read)(void *arg),
                    void *arg)
{
    if (!read)
        return -EINVAL;
    series *s;
    return declare(m, KIND_GAUGE_FN, name, help, NULL, NULL, 0, read, arg, &s);
}

/* ---- labelled series ---- */

static int
series_for(series *fam_handle, series **out, va_list ap)
{
    assert(fam_handle && out);
    family *f = fam_handle->family;
    const char *values[MAX_LABELS];
    size_t n = 0;
    const char *v;
    while ((v = va_arg(ap, const char *)) != NULL) {
        if (n == MAX_LABELS)
            return -EINVAL;
        values[n++] = v;
    }
    if (!fam_handle->is_family || n != f->nlabels)
        return -EINVAL;

    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nchildren; i++) {
        series *s = f->children[i];
        size_t j = 0;
        while (j < n && strcmp(s->label_values[j], values[j]) == 0)
            j++;
        if (j == n) {
            pthread_mutex_unlock(&f->lock);
            *out = s;
            return 0;
        }
    }
    int rc = -ENOMEM;
    series *s = calloc(1, sizeof(*s));
    if (!s || !(s->label_values = calloc(n, sizeof(char *))))
        goto fail;
    for (size_t j = 0; j < n; j++)
        if (!(s->label_values[j] = strdup(values[j])))
            goto fail;
    if ((rc = series_init(s, f)) != 0)
        goto fail;
    if (f->nchildren == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        series **grown = realloc(f->children, cap * sizeof(*grown));
        rc = -ENOMEM;
        if (!grown)
            goto fail;
        f->children = grown;
        f->cap = cap;
    }
    f->children[f->nchildren++] = s;
    pthread_mutex_unlock(&f->lock);
    *out = s;
    return 0;

fail:
    pthread_mutex_unlock(&f->lock);
    if (s)
        series_free_contents(s, n);
    free(s);
    return rc;
}

int
lb_counter_labels(lb_counter *fam, lb_counter **out, ...)
{
    va_list ap;
    va_start(ap, out);
    series *s;
    int rc = fam ? series_for(&fam->s, &s, ap) : -EINVAL;
    va_end(ap);
    if (rc == 0)
        *out = (lb_counter *)s;
    return rc;
}

int
lb_gauge_labels(lb_gauge *fam, lb_gauge **out, ...)
{
    va_list ap;
    va_start(ap, out);
    series *s;
    int rc = fam ? series_for(&fam->s, &s, ap) : -EINVAL;
    va_end(ap);
    if (rc == 0)
        *out = (lb_gauge *)s;
    return rc;
}

int
lb_histogram_labels(lb_histogram *fam, lb_histogram **out, ...)
{
    va_list ap;
    va_start(ap, out);
    series *s;
    int rc = fam ? series_for(&fam->s, &s, ap) : -EINVAL;
    va_end(ap);
    if (rc == 0)
        *out = (lb_histogram *)s;
    return rc;
}

/* ---- updates ---- */

void
lb_counter_inc(lb_counter *c)
{
    lb_counter_add(c, 1.0);
}

void
lb_counter_add(lb_counter *c, double v)
{
    if (!c || c->s.is_family || !(v >= 0))
        return;
    assert(c->s.family->kind == KIND_COUNTER);
    atomic_add_double(&c->s.value, v);
}

void
lb_gauge_set(lb_gauge *g, double v)
{
    if (!g || g->s.is_family)
        return;
    assert(g->s.family->kind == KIND_GAUGE);
    atomic_store_explicit(&g->s.value, dbits(v), memory_order_relaxed);
}

void
lb_gauge_add(lb_gauge *g, double v)
{
    if (!g || g->s.is_family)
        return;
    assert(g->s.family->kind == KIND_GAUGE);
    atomic_add_double(&g->s.value, v);
}

void
lb_gauge_inc(lb_gauge *g)
{
    lb_gauge_add(g, 1.0);
}

void
lb_gauge_dec(lb_gauge *g)
{
    lb_gauge_add(g, -1.0);
}

void
lb_histogram_observe(lb_histogram *h, double v)
{
    if (!h || h->s.is_family || isnan(v))
        return;
    const family *f = h->s.family;
    assert(f->kind == KIND_HISTOGRAM && h->s.buckets);
    /* first bucket whose upper bound is >= v; nbounds is +Inf */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->s.buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->s.sum, v);
}

double
lb_counter_value(const lb_counter *c)
{
    return c ? bitsd(atomic_load_explicit(&((lb_counter *)c)->s.value, memory_order_relaxed)) : 0;
}

double
lb_gauge_value(const lb_gauge *g)
{
    return g ? bitsd(atomic_load_explicit(&((lb_gauge *)g)->s.value, memory_order_relaxed)) : 0;
}

unsigned long long
lb_histogram_count(const lb_histogram *h)
{
    if (!h || h->s.is_family)
        return 0;
    unsigned long long n = 0;
    for (size_t i = 0; i <= h->s.family->nbounds; i++)
        n += atomic_load_explicit(&h->s.buckets[i], memory_order_relaxed);
    return n;
}

double
lb_histogram_sum(const lb_histogram *h)
{
    return h ? bitsd(atomic_load_explicit(&((lb_histogram *)h)->s.sum, memory_order_relaxed)) : 0;
}

/* ---- rendering ---- */

/* Shortest text that reads back as v; integers without a decimal point. */
static void
format_value(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, cap, "%lld", (long long)v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, cap, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                return;
        }
    }
}

/* Escape for a HELP line (backslash, newline) or a label value (also '"'). */
static int
append_escaped(lb_buf *out, const char *s, bool quote)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = lb_buf_append(out, "\\\\", 2);
        else if (*s == '\n')
            rc = lb_buf_append(out, "\\n", 2);
        else if (quote && *s == '"')
            rc = lb_buf_append(out, "\\\"", 2);
        else
            rc = lb_buf_append(out, s, 1);
    }
    return rc;
}

/* "{a="x",b="y"" without the closing brace when more follows, else with. */
static int
append_labels(lb_buf *out, const family *f, const series *s, const char *le)
{
    if (f->nlabels == 0 && !le)
        return 0;
    int rc = lb_buf_append(out, "{", 1);
    for (size_t i = 0; i < f->nlabels && rc == 0; i++) {
        rc = lb_buf_printf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
        if (rc == 0)
            rc = append_escaped(out, s->label_values[i], true);
        if (rc == 0)
            rc = lb_buf_append(out, "\"", 1);
    }
    if (rc == 0 && le)
        rc = lb_buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    if (rc == 0)
        rc = lb_buf_append(out, "}", 1);
    return rc;
}

static int
render_sample(lb_buf *out, const family *f, const series *s, const char *suffix, const char *le,
              double v)
{
    char num[64];
    format_value(v, num, sizeof(num));
    int rc = lb_buf_printf(out, "%s%s", f->name, suffix);
    if (rc == 0)
        rc = append_labels(out, f, s, le);
    if (rc == 0)
        rc = lb_buf_printf(out, " %s\n", num);
    return rc;
}

static int
render_series(lb_buf *out, const family *f, series *s)
{
    switch (f->kind) {
    case KIND_COUNTER:
    case KIND_GAUGE:
        return render_sample(out, f, s, "", NULL,
                             bitsd(atomic_load_explicit(&s->value, memory_order_relaxed)));
    case KIND_GAUGE_FN:
        return render_sample(out, f, s, "", NULL, f->read ? f->read(f->read_arg) : 0);
    case KIND_HISTOGRAM:
        break;
    }
    uint64_t cumulative = 0;
    int rc = 0;
    for (size_t i = 0; i <= f->nbounds && rc == 0; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        char le[64];
        if (i < f->nbounds)
            format_value(f->bounds[i], le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        rc = render_sample(out, f, s, "_bucket", le, (double)cumulative);
    }
    if (rc == 0)
        rc = render_sample(out, f, s, "_sum", NULL,
                           bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed)));
    if (rc == 0)
        rc = render_sample(out, f, s, "_count", NULL, (double)cumulative);
    return rc;
}

static int
cmp_family(const void *a, const void *b)
{
    return strcmp((*(family *const *)a)->name, (*(family *const *)b)->name);
}

static int
cmp_series(const void *a, const void *b, void *nlabels)
{
    const series *x = *(series *const *)a, *y = *(series *const *)b;
    for (size_t i = 0; i < *(size_t *)nlabels; i++) {
        int c = strcmp(x->label_values[i], y->label_values[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static int
render_family(lb_buf *out, family *f)
{
    int rc = lb_buf_printf(out, "# HELP %s ", f->name);
    if (rc == 0)
        rc = append_escaped(out, f->help, false);
    if (rc == 0)
        rc = lb_buf_printf(out, "\n# TYPE %s %s\n", f->name, kind_names[f->kind]);
    if (rc != 0)
        return rc;
    if (f->nlabels == 0)
        return render_series(out, f, &f->root);

    pthread_mutex_lock(&f->lock);
    size_t n = f->nchildren;
    series **sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
    if (n && !sorted) {
        pthread_mutex_unlock(&f->lock);
        return -ENOMEM;
    }
    if (n)
        memcpy(sorted, f->children, n * sizeof(*sorted));
    pthread_mutex_unlock(&f->lock);

    if (n)
        qsort_r(sorted, n, sizeof(*sorted), cmp_series, &f->nlabels);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = render_series(out, f, sorted[i]);
    free(sorted);
    return rc;
}

int
lb_metrics_render(lb_metrics *m, lb_buf *out)
{
    assert(m && out);
    pthread_mutex_lock(&m->lock);
    size_t n = m->n;
    family **sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
    if (n && !sorted) {
        pthread_mutex_unlock(&m->lock);
        return -ENOMEM;
    }
    if (n)
        memcpy(sorted, m->families, n * sizeof(*sorted));
    pthread_mutex_unlock(&m->lock);

    if (n)
        qsort(sorted, n, sizeof(*sorted), cmp_family);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = render_family(out, sorted[i]);
    free(sorted);
    return rc;
}
