/*
 * conditions.c: status conditions (see conditions.h) and the RFC 3339 times
 * they carry.
 *
 * Invariant: ctl_condition_set() never changes lastTransitionTime unless the
 * status string changes; the array keeps one entry per type, in the order
 * the types were first set (status writes then differ only where something
 * changed, which keeps the API server's no-op detection effective).
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "conditions.h"
#include "errors.h"

bool
ctl_reason_valid(const char *reason)
{
    if (!reason || !isupper((unsigned char)reason[0]))
        return false;
    size_t n = 0;
    for (const char *p = reason; *p; p++, n++)
        if (!isalnum((unsigned char)*p) || n >= 1024)
            return false;
    return true;
}

json_t *
ctl_condition_get(const json_t *conditions, const char *type)
{
    size_t i;
    json_t *c;
    if (!json_is_array(conditions))
        return NULL;
    json_array_foreach(conditions, i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && strcmp(t, type) == 0)
            return c;
    }
    return NULL;
}

bool
ctl_condition_true(const json_t *conditions, const char *type)
{
    json_t *c = ctl_condition_get(conditions, type);
    const char *s = c ? json_string_value(json_object_get(c, "status")) : NULL;
    return s && strcmp(s, "True") == 0;
}

int
ctl_condition_set(json_t *conditions, const char *type, const char *status, const char *reason,
                  const char *message, int64_t generation, const char *now)
{
    if (!json_is_array(conditions) || !type || !status || !now || !ctl_reason_valid(reason))
        return -EINVAL;
    if (strcmp(status, "True") != 0 && strcmp(status, "False") != 0 &&
        strcmp(status, "Unknown") != 0)
        return -EINVAL;
    json_t *c = ctl_condition_get(conditions, type);
    const char *since = now;
    if (c) {
        const char *old = json_string_value(json_object_get(c, "status"));
        const char *old_time = json_string_value(json_object_get(c, "lastTransitionTime"));
        if (old && old_time && strcmp(old, status) == 0)
            since = old_time;
    }
    json_t *n = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", type, "status", status,
                          "reason", reason, "message", message ? message : "", "lastTransitionTime",
                          since, "observedGeneration", (json_int_t)generation);
    if (!n)
        return -ENOMEM;
    if (c) {
        /* replace in place, keeping the position */
        size_t i;
        json_t *x;
        json_array_foreach(conditions, i, x)
        {
            if (x == c)
                return json_array_set_new(conditions, i, n) == 0 ? 0 : -ENOMEM;
        }
        assert(!"condition vanished");
    }
    return json_array_append_new(conditions, n) == 0 ? 0 : -ENOMEM;
}

void
ctl_time_rfc3339(int64_t secs, char *buf, size_t cap)
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
ctl_now_rfc3339(char *buf, size_t cap)
{
    ctl_time_rfc3339((int64_t)time(NULL), buf, cap);
}

int
ctl_rfc3339_parse(const char *text, int64_t *secs)
{
    int64_t us;
    int rc = lb_rfc3339_parse(text, &us);
    if (rc == 0)
        *secs = us / 1000000; /* whole seconds, as Kubernetes writes them */
    return rc;
}
