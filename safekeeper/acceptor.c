/*
 * acceptor.c: acceptor state persistence and the term/vote rules.
 *
 * The state file is JSON (readable by an operator with jq), written with
 * sorted keys, plus a "crc32c" field computed over the compact dump of
 * everything else. A torn or edited file is refused at load: the term in
 * this file is a promise to every proposer, so guessing it is never safe.
 */
#include "acceptor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "errors.h"
#include "fileio.h"
#include "json.h"
#include "log.h"

#define STATE_VERSION 1

bool
sk_id_valid(const char *s)
{
    return s && lb_json_is_id(s);
}

void
sk_acceptor_init(sk_acceptor_state *st, const char *tenant_id, const char *timeline_id,
                 uint64_t system_id, uint32_t wal_seg_size, lb_lsn start_lsn, uint32_t start_tli)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->tenant_id, sizeof(st->tenant_id), "%s", tenant_id);
    snprintf(st->timeline_id, sizeof(st->timeline_id), "%s", timeline_id);
    st->system_id = system_id;
    st->wal_seg_size = wal_seg_size;
    st->start_lsn = start_lsn;
    st->flush_lsn = start_lsn;
    st->commit_lsn = start_lsn;
    st->start_tli = start_tli;
}

static json_t *
lsn_json(lb_lsn lsn)
{
    char buf[LB_LSN_STRLEN];
    return json_string(lb_lsn_format(lsn, buf));
}

json_t *
sk_term_history_to_json(const sk_term_entry *h, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:I, s:o, s:I}", "term", (json_int_t)h[i].term, "lsn",
                                        lsn_json(h[i].start_lsn), "tli", (json_int_t)h[i].tli));
    return arr;
}

json_t *
sk_acceptor_to_json(const sk_acceptor_state *st)
{
    char sysid[24];
    snprintf(sysid, sizeof(sysid), "%" PRIu64, st->system_id);
    json_t *j = json_pack(
        "{s:i, s:s, s:s, s:s, s:I, s:o, s:I, s:I, s:o, s:o, s:o, s:o}", "version", STATE_VERSION,
        "tenant_id", st->tenant_id, "timeline_id", st->timeline_id, "system_id", sysid,
        "wal_seg_size", (json_int_t)st->wal_seg_size, "start_lsn", lsn_json(st->start_lsn),
        "start_tli", (json_int_t)st->start_tli, "term", (json_int_t)st->term, "term_history",
        sk_term_history_to_json(st->history, st->nhistory), "flush_lsn", lsn_json(st->flush_lsn),
        "commit_lsn", lsn_json(st->commit_lsn), "offloaded_lsn", lsn_json(st->offloaded_lsn));
    if (j && st->fsync_failed_lsn)
        json_object_set_new(j, "fsync_failed_lsn", lsn_json(st->fsync_failed_lsn));
    if (j && st->nconsumers) {
        json_t *arr = json_array();
        for (size_t i = 0; i < st->nconsumers; i++)
            json_array_append_new(arr, json_pack("{s:s, s:o}", "name", st->consumers[i].name, "lsn",
                                                 lsn_json(st->consumers[i].lsn)));
        json_object_set_new(j, "consumers", arr);
    }
    if (j && st->compute[0])
        json_object_set_new(
            j, "compute",
            json_pack("{s:I, s:s}", "term", (json_int_t)st->compute_term, "conninfo", st->compute));
    return j;
}

static uint32_t
content_crc(json_t *obj)
{
    char *dump = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    uint32_t crc = dump ? lb_crc32c(dump, strlen(dump)) : 0;
    free(dump);
    return crc;
}

int
sk_acceptor_save(const char *path, const sk_acceptor_state *st)
{
    json_t *obj = sk_acceptor_to_json(st);
    if (!obj)
        return -ENOMEM;
    json_object_set_new(obj, "crc32c", json_integer(content_crc(obj)));
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(obj);
    if (!text)
        return -ENOMEM;
    size_t n = strlen(text);
    text[n] = '\0';
    char *with_nl = realloc(text, n + 2);
    if (!with_nl) {
        free(text);
        return -ENOMEM;
    }
    with_nl[n] = '\n';
    int rc = lb_write_file_atomic(path, with_nl, n + 1);
    free(with_nl);
    return rc;
}

static int
get_lsn(json_t *obj, const char *key, lb_lsn *out)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? lb_lsn_parse(s, out) : LB_EPARSE;
}

static int
history_check(const sk_term_entry *h, size_t n, char *msg, size_t cap)
{
    for (size_t i = 1; i < n; i++) {
        if (h[i].term <= h[i - 1].term) {
            snprintf(msg, cap, "term_history terms must increase (entry %zu)", i);
            return LB_EPARSE;
        }
        if (h[i].start_lsn < h[i - 1].start_lsn) {
            snprintf(msg, cap, "term_history LSNs must not decrease (entry %zu)", i);
            return LB_EPARSE;
        }
    }
    return 0;
}

int
sk_term_history_from_json(const json_t *arr, sk_term_entry *h, size_t cap, size_t *n, char *msg,
                          size_t msgcap)
{
    if (!json_is_array(arr)) {
        snprintf(msg, msgcap, "term_history must be an array");
        return LB_EPARSE;
    }
    size_t count = json_array_size(arr);
    if (count > cap) {
        snprintf(msg, msgcap, "term_history has %zu entries, at most %zu allowed", count, cap);
        return LB_EPARSE;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(arr, i);
        json_t *term = json_object_get(e, "term"), *tli = json_object_get(e, "tli");
        if (!json_is_integer(term) || json_integer_value(term) <= 0 || !json_is_integer(tli) ||
            json_integer_value(tli) <= 0 || json_integer_value(tli) > UINT32_MAX ||
            get_lsn(e, "lsn", &h[i].start_lsn) != 0) {
            snprintf(msg, msgcap,
                     "term_history entry %zu must be {\"term\": N > 0, \"lsn\": \"X/X\", "
                     "\"tli\": N > 0}",
                     i);
            return LB_EPARSE;
        }
        h[i].term = (uint64_t)json_integer_value(term);
        h[i].tli = (uint32_t)json_integer_value(tli);
    }
    *n = count;
    return history_check(h, count, msg, msgcap);
}

int
sk_acceptor_load(const char *path, sk_acceptor_state *st)
{
    lb_buf text = LB_BUF_INIT;
    int rc = lb_read_file(path, &text);
    if (rc) {
        lb_buf_free(&text);
        return rc;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(text.data, text.len, 0, &jerr);
    lb_buf_free(&text);
    if (!json_is_object(obj)) {
        if (obj)
            lb_error("invalid state file \"%s\": not a JSON object", path);
        else
            lb_error("could not parse state file \"%s\": %s (line %d)", path, jerr.text, jerr.line);
        json_decref(obj);
        return LB_EPARSE;
    }

    char msg[200] = "";
    json_t *crc = json_object_get(obj, "crc32c");
    if (!json_is_integer(crc)) {
        snprintf(msg, sizeof(msg), "missing field \"crc32c\"");
        rc = LB_EPARSE;
        goto out;
    }
    json_int_t want = json_integer_value(crc);
    json_object_del(obj, "crc32c");
    if ((uint32_t)want != content_crc(obj) || want < 0 || want > UINT32_MAX) {
        lb_error("state file \"%s\" fails its checksum; refusing to use it", path);
        rc = LB_ECRC;
        goto out;
    }

    memset(st, 0, sizeof(*st));
    json_int_t version = 0, seg = 0, term = 0, start_tli = 0;
    const char *tenant = NULL, *timeline = NULL, *sysid = NULL;
    json_t *hist = NULL;
    if (json_unpack(obj, "{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "version", &version,
                    "tenant_id", &tenant, "timeline_id", &timeline, "system_id", &sysid,
                    "wal_seg_size", &seg, "start_tli", &start_tli, "term", &term, "term_history",
                    &hist) != 0) {
        snprintf(msg, sizeof(msg), "missing or ill-typed field");
        rc = LB_EPARSE;
        goto out;
    }
    if (version != STATE_VERSION) {
        snprintf(msg, sizeof(msg), "unsupported version %lld", (long long)version);
        rc = LB_EPARSE;
        goto out;
    }
    if (!sk_id_valid(tenant) || !sk_id_valid(timeline) || term < 0 || seg <= 0 ||
        seg > UINT32_MAX || start_tli <= 0 || start_tli > UINT32_MAX ||
        get_lsn(obj, "start_lsn", &st->start_lsn) != 0) {
        snprintf(msg, sizeof(msg),
                 "bad tenant_id, timeline_id, term, wal_seg_size, start_lsn or start_tli");
        rc = LB_EPARSE;
        goto out;
    }
    char *end;
    errno = 0;
    st->system_id = strtoull(sysid, &end, 10);
    if (errno || *end || end == sysid) {
        snprintf(msg, sizeof(msg), "bad system_id");
        rc = LB_EPARSE;
        goto out;
    }
    strcpy(st->tenant_id, tenant);
    strcpy(st->timeline_id, timeline);
    st->wal_seg_size = (uint32_t)seg;
    st->start_tli = (uint32_t)start_tli;
    st->term = (uint64_t)term;
    rc = sk_term_history_from_json(hist, st->history, SK_MAX_TERM_HISTORY, &st->nhistory, msg,
                                   sizeof(msg));
    if (rc)
        goto out;
    if (st->nhistory && st->history[0].start_lsn < st->start_lsn) {
        snprintf(msg, sizeof(msg), "term_history starts before start_lsn");
        rc = LB_EPARSE;
        goto out;
    }
    if (sk_last_log_term(st) > st->term) {
        snprintf(msg, sizeof(msg), "last log term is above the promised term");
        rc = LB_EPARSE;
        goto out;
    }
    json_t *compute = json_object_get(obj, "compute");
    if (compute) {
        json_int_t cterm = 0;
        const char *conninfo = NULL;
        if (json_unpack(compute, "{s:I, s:s}", "term", &cterm, "conninfo", &conninfo) != 0 ||
            cterm <= 0 || (uint64_t)cterm > st->term || strlen(conninfo) >= sizeof(st->compute)) {
            snprintf(msg, sizeof(msg), "bad compute");
            rc = LB_EPARSE;
            goto out;
        }
        st->compute_term = (uint64_t)cterm;
        strcpy(st->compute, conninfo);
    }
    if (json_object_get(obj, "fsync_failed_lsn") &&
        get_lsn(obj, "fsync_failed_lsn", &st->fsync_failed_lsn) != 0) {
        snprintf(msg, sizeof(msg), "bad fsync_failed_lsn");
        rc = LB_EPARSE;
        goto out;
    }
    json_t *consumers = json_object_get(obj, "consumers");
    if (consumers) {
        size_t i;
        json_t *c;
        if (!json_is_array(consumers) || json_array_size(consumers) > SK_MAX_CONSUMERS) {
            snprintf(msg, sizeof(msg), "bad consumers");
            rc = LB_EPARSE;
            goto out;
        }
        json_array_foreach(consumers, i, c)
        {
            const char *name = json_string_value(json_object_get(c, "name"));
            if (!name || strlen(name) >= sizeof(st->consumers[0].name) ||
                get_lsn(c, "lsn", &st->consumers[i].lsn) != 0) {
                snprintf(msg, sizeof(msg), "bad consumer %zu", i);
                rc = LB_EPARSE;
                goto out;
            }
            strcpy(st->consumers[i].name, name);
        }
        st->nconsumers = json_array_size(consumers);
    }
    if (get_lsn(obj, "flush_lsn", &st->flush_lsn) || get_lsn(obj, "commit_lsn", &st->commit_lsn) ||
        get_lsn(obj, "offloaded_lsn", &st->offloaded_lsn)) {
        snprintf(msg, sizeof(msg), "bad flush_lsn, commit_lsn or offloaded_lsn");
        rc = LB_EPARSE;
        goto out;
    }
out:
    if (rc == LB_EPARSE)
        lb_error("invalid state file \"%s\": %s", path, msg);
    json_decref(obj);
    return rc;
}

uint64_t
sk_last_log_term(const sk_acceptor_state *st)
{
    return st->nhistory ? st->history[st->nhistory - 1].term : 0;
}

bool
sk_acceptor_vote(sk_acceptor_state *st, uint64_t term)
{
    if (term <= st->term)
        return false;
    st->term = term;
    return true;
}

int
sk_donor_cmp(uint64_t term_a, lb_lsn flush_a, uint64_t term_b, lb_lsn flush_b)
{
    if (term_a != term_b)
        return term_a < term_b ? -1 : 1;
    if (flush_a != flush_b)
        return flush_a < flush_b ? -1 : 1;
    return 0;
}

/* End of the WAL that term entry i of h wrote: the next entry's start, or
 * flush for the last entry. */
static lb_lsn
term_end(const sk_term_entry *h, size_t n, size_t i, lb_lsn flush)
{
    return i + 1 < n ? h[i + 1].start_lsn : flush;
}

lb_lsn
sk_history_common_end(const sk_term_entry *mine, size_t nmine, lb_lsn my_flush,
                      const sk_term_entry *theirs, size_t ntheirs, lb_lsn their_flush)
{
    /* The highest term in both histories: one proposer wrote that term's
     * WAL, and everything before it was adopted from that proposer's
     * history, so both logs agree up to the shorter end of that term. */
    size_t i = nmine, j = ntheirs;
    while (i > 0 && j > 0) {
        const sk_term_entry *a = &mine[i - 1], *b = &theirs[j - 1];
        if (a->term == b->term) {
            if (a->start_lsn != b->start_lsn) /* impossible unless a peer lies */
                return a->start_lsn < b->start_lsn ? a->start_lsn : b->start_lsn;
            lb_lsn ea = term_end(mine, nmine, i - 1, my_flush);
            lb_lsn eb = term_end(theirs, ntheirs, j - 1, their_flush);
            return ea < eb ? ea : eb;
        }
        if (a->term > b->term)
            i--;
        else
            j--;
    }
    return 0;
}

uint32_t
sk_history_tli_at(const sk_term_entry *h, size_t n, lb_lsn lsn)
{
    uint32_t tli = 0;
    for (size_t i = 0; i < n && h[i].start_lsn <= lsn; i++)
        tli = h[i].tli;
    return tli;
}
