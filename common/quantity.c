/*
 * quantity.c: Kubernetes quantities and durations (see quantity.h).
 *
 * Both are parsed with the grammar their owners define (apimachinery's
 * resource.Quantity, Go's time.ParseDuration), but only as far as lakebase
 * needs: quantities are non-negative and fit an int64 once
 * rounded up; durations are non-negative and kept in milliseconds.
 * Arithmetic goes through long double with explicit range checks, so that
 * no input can overflow an integer.
 */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"
#include "quantity.h"

/* digits[.digits] or .digits at *p; advances *p. false if no digit. */
static bool
decimal(const char **p, long double *out)
{
    const char *s = *p;
    long double v = 0;
    bool any = false;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s++ - '0');
        any = true;
        if (v > 1e30L)
            return false;
    }
    if (*s == '.') {
        s++;
        long double scale = 0.1L;
        while (isdigit((unsigned char)*s)) {
            v += (*s++ - '0') * scale;
            scale /= 10;
            any = true;
        }
    }
    if (!any)
        return false;
    *p = s;
    *out = v;
    return true;
}

/* The quantity times scale, rounded up. */
static int
quantity_scaled(const char *text, long double scale, int64_t *out)
{
    if (!text || !*text)
        return LB_EPARSE;
    const char *p = text;
    if (*p == '+')
        p++;
    long double v;
    if (!decimal(&p, &v))
        return LB_EPARSE;
    static const struct {
        const char *suffix;
        long double mult;
    } suffixes[] = {
        {"Ki", 1024.0L},
        {"Mi", 1048576.0L},
        {"Gi", 1073741824.0L},
        {"Ti", 1099511627776.0L},
        {"Pi", 1125899906842624.0L},
        {"Ei", 1152921504606846976.0L},
        {"n", 1e-9L},
        {"u", 1e-6L},
        {"m", 1e-3L},
        {"k", 1e3L},
        {"M", 1e6L},
        {"G", 1e9L},
        {"T", 1e12L},
        {"P", 1e15L},
        {"E", 1e18L},
        {"", 1.0L},
    };
    long double mult = 0;
    if (*p == 'e' || *p == 'E') {
        /* An exponent, unless this is the suffix "E" alone. */
        if (p[1] == '\0') {
            mult = 1e18L;
            p++;
        } else {
            p++;
            bool neg = false;
            if (*p == '+' || *p == '-')
                neg = *p++ == '-';
            int exp = 0;
            if (!isdigit((unsigned char)*p))
                return LB_EPARSE;
            while (isdigit((unsigned char)*p)) {
                exp = exp * 10 + (*p++ - '0');
                if (exp > 100)
                    return LB_EPARSE;
            }
            mult = powl(10.0L, neg ? -exp : exp);
        }
    } else {
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            size_t n = strlen(suffixes[i].suffix);
            if (strncmp(p, suffixes[i].suffix, n) == 0 && p[n] == '\0') {
                mult = suffixes[i].mult;
                p += n;
                break;
            }
        }
    }
    if (*p != '\0' || mult == 0)
        return LB_EPARSE;
    long double total = ceill(v * mult * scale - 1e-9L);
    if (total < 0)
        total = 0;
    if (total > 9.2e18L)
        return LB_EPARSE;
    *out = (int64_t)total;
    return 0;
}

int
lb_quantity_parse(const char *text, int64_t *out)
{
    return quantity_scaled(text, 1.0L, out);
}

int
lb_quantity_milli(const char *text, int64_t *out)
{
    return quantity_scaled(text, 1000.0L, out);
}

int
lb_duration_parse(const char *text, int64_t *ms)
{
    if (!text || !*text)
        return LB_EPARSE;
    const char *p = text;
    if (*p == '+')
        p++;
    if (strcmp(p, "0") == 0) {
        *ms = 0;
        return 0;
    }
    static const struct {
        const char *unit;
        long double ms;
    } units[] = {
        /* longer units first where one is a prefix of another */
        {"ns", 1e-6L}, {"us", 1e-3L}, {"\xc2\xb5s", 1e-3L}, {"ms", 1.0L},
        {"s", 1e3L},   {"m", 6e4L},   {"h", 3.6e6L},        {"d", 8.64e7L},
    };
    long double total = 0;
    bool any = false;
    while (*p) {
        long double v;
        if (!decimal(&p, &v))
            return LB_EPARSE;
        long double mult = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, n) == 0) {
                mult = units[i].ms;
                p += n;
                break;
            }
        }
        if (mult == 0)
            return LB_EPARSE;
        total += v * mult;
        if (total > 9.2e15L)
            return LB_EPARSE;
        any = true;
    }
    if (!any)
        return LB_EPARSE;
    *ms = (int64_t)floorl(total + 1e-9L);
    return 0;
}
