/*
 * walserve.c: WAL segments and timeline history files for a server that
 * restores a timeline, across its ancestors.
 *
 * A timeline's WAL lives on PostgreSQL timelines (TLIs). A root timeline
 * starts on the TLI of its bootstrap and each election moves it to the
 * next one. A branch B of A at LSN L starts on the TLI A had at L (B's
 * pg_tli, found when B was created), and B's own computes write TLIs above
 * it. So, for a file asked of B:
 *   - a TLI at or below B's pg_tli is A's WAL: asked of A (recursively),
 *     and cut at L: a segment that starts at or after L does not exist in
 *     B's history, and in the segment holding L every byte from L on is
 *     zero, so that a server replaying it ends exactly at the branch point
 *     (A's later WAL is in those bytes, and must never reach B);
 *   - a higher TLI is B's own: asked of B's safekeepers (which serve
 *     committed WAL only, the segment holding the end zero-padded), then of
 *     object storage, where safekeepers offload completed segments under
 *     <tenant>/<timeline>/wal/.
 * History files are immutable, and a TLI's history only names switch
 * points before the TLI began, so they need no cut. But B's safekeepers
 * know B's history only from its pg_tli on: a history file of B's own is
 * completed with the ancestor's history of pg_tli in front, as the
 * compute itself wrote it when it chose its TLI.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "timelines.h"
#include "walserve.h"
#include "auth.h"
#include "errors.h"
#include "fileio.h"
#include "http_client.h"
#include "log.h"
#include "wal.h"

#define MAX_DEPTH 64

typedef struct sink {
    int fd;
    uint64_t bytes;
} sink;

static int
sink_write(void *arg, const char *bytes, size_t n)
{
    sink *s = arg;
    int rc = lb_write_all(s->fd, bytes, n);
    if (rc == 0)
        s->bytes += n;
    return rc;
}

static int
sink_reset(void *arg)
{
    sink *s = arg;
    s->bytes = 0;
    if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0)
        return -errno;
    return 0;
}

/* Copy all of from into to (both regular files), replacing to's bytes. */
static int
copy_file(int from, int to)
{
    if (ftruncate(to, 0) != 0 || lseek(to, 0, SEEK_SET) != 0 || lseek(from, 0, SEEK_SET) != 0)
        return -errno;
    char chunk[65536];
    for (;;) {
        ssize_t r = read(from, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return 0;
        int rc = lb_write_all(to, chunk, (size_t)r);
        if (rc)
            return rc;
    }
}

/* One GET of a safekeeper's file into s. 0 with *status, or an HTTP error
 * (err says which). For a segment, *valid is what the answer vouches for. */
static int
get_from_safekeeper(lb_http_client *http, const char *url, bool history, uint32_t seg_size, sink *s,
                    long *status, lb_wal_valid *valid, char *err, size_t errcap)
{
    int rc = sink_reset(s);
    if (rc)
        return rc;
    lb_http_call call = {.method = "GET",
                         .url = url,
                         .response_write = sink_write,
                         .response_reset = sink_reset,
                         .response_arg = s};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    rc = lb_http_do(http, &call, &res);
    *status = res.status;
    if (rc == 0 && res.status == 200 && !history &&
        lb_wal_valid_parse(lb_http_result_header(&res, LB_WAL_VALID_BYTES_HEADER),
                           lb_http_result_header(&res, LB_WAL_VALID_FINAL_HEADER), seg_size,
                           valid) != 0) {
        snprintf(err, errcap, "%s sent a malformed " LB_WAL_VALID_BYTES_HEADER " header", url);
        rc = LB_EPROTO;
    } else if (rc) {
        snprintf(err, errcap, "%s: %s", url, lb_http_client_error(http));
    }
    lb_http_result_free(&res);
    return rc;
}

/* The timeline's own WAL: its safekeepers, then object storage. A history
 * file is taken from the first that has it. A segment is taken whole from
 * the first that vouches for all of it (or says its timeline ends early),
 * else the answer with the most WAL is kept (*valid says how much): a
 * safekeeper that just restarted, or lags, cuts the last segment at its own
 * stale commit LSN. Object storage holds only whole segments. */
static int
fetch_own(ps_daemon *d, const ps_tlmeta *m, const char *name, bool history, int fd,
          lb_wal_valid *valid, char *err, size_t errcap)
{
    sink out = {.fd = fd}, alt = {.fd = -1};
    bool unreachable = false, found = false;
    uint32_t seg_size = m->wal_seg_size;
    *valid = (lb_wal_valid){.bytes = seg_size, .final = true};
    lb_http_options opts = {.connect_timeout_ms = 1000, .timeout_ms = 30000, .max_attempts = 2};
    lb_http_client *http = NULL;
    int rc = m->nsafekeepers ? lb_http_client_new(&opts, &http) : 0;
    if (rc)
        return rc;
    if (http)
        lb_http_client_set_token(http, d->token);
    for (size_t i = 0; i < m->nsafekeepers && !(found && lb_wal_valid_complete(valid, seg_size));
         i++) {
        char url[512];
        snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s/%s/%s", m->safekeepers[i].http,
                 m->tenant_id, m->timeline_id, history ? "history" : "segment", name);
        if (found && alt.fd < 0) {
            char tmp[PATH_MAX];
            snprintf(tmp, sizeof(tmp), "%s/tmp", d->conf.data_dir);
            if ((alt.fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
                rc = -errno;
                break;
            }
        }
        sink *into = found ? &alt : &out;
        long status;
        lb_wal_valid got = {.bytes = seg_size, .final = true}; /* a history file is whole */
        rc = get_from_safekeeper(http, url, history, seg_size, into, &status, &got, err, errcap);
        if (rc == 0 && status == 200) {
            if (!found || lb_wal_valid_better(&got, valid)) {
                if (into == &alt && (rc = copy_file(alt.fd, fd)) != 0)
                    break;
                *valid = got;
            }
            found = true;
            continue;
        }
        if (rc != 0 || status != 404) {
            unreachable = true;
            if (rc == 0)
                snprintf(err, errcap, "safekeeper %s: unexpected status %ld",
                         m->safekeepers[i].http, status);
        }
        rc = 0;
    }
    lb_http_client_free(http);
    if (alt.fd >= 0)
        close(alt.fd);
    if (rc)
        return rc;
    if (found && history)
        return 0;
    if (!history && !(found && lb_wal_valid_complete(valid, seg_size))) {
        char key[256];
        snprintf(key, sizeof(key), "%s/%s/wal/%s", m->tenant_id, m->timeline_id, name);
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s/tmp", d->conf.data_dir);
        /* Into fd only if nothing is there yet: a failed download must not
         * spoil a safekeeper's answer. */
        sink *into = &out;
        if (found && (alt.fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
            return -errno;
        if (found)
            into = &alt;
        lb_objstore *store = NULL;
        rc = sink_reset(into);
        if (rc == 0)
            rc = ps_store_acquire(d, &store);
        if (rc == 0)
            rc = lb_objstore_get_stream(store, key, sink_write, into);
        if (rc && rc != LB_ENOTFOUND) {
            lb_counter_inc(d->storage_errors);
            snprintf(err, errcap, "object storage: %s",
                     store ? lb_objstore_error(store) : lb_strerror(rc));
        }
        ps_store_release(d, store);
        if (rc == 0 && into->bytes != seg_size) {
            snprintf(err, errcap, "object storage: %s has %llu bytes, not %u", key,
                     (unsigned long long)into->bytes, seg_size);
            rc = LB_EPROTO;
        }
        if (rc == 0 && into == &alt)
            rc = copy_file(alt.fd, fd);
        if (alt.fd >= 0)
            close(alt.fd);
        if (rc == 0) {
            *valid = (lb_wal_valid){.bytes = seg_size, .final = true};
            found = true;
        }
        if (rc && rc != LB_ENOTFOUND && !found)
            return rc;
        if (rc && rc != LB_ENOTFOUND)
            lb_warn("could not read segment %s from object storage, serving the most a "
                    "safekeeper has: %s",
                    name, err);
        rc = 0;
    }
    if (found)
        return 0; /* the most any source had; the caller checks *valid */
    if (unreachable)
        return LB_EHTTP; /* err says which safekeeper */
    snprintf(err, errcap, "%s is not in timeline %s", name, m->timeline_id);
    return LB_ENOTFOUND;
}

/* Zero [from, seg_size) of the segment in fd, which must be whole. */
static int
cut_segment(int fd, uint32_t seg_size, uint64_t from, char *err, size_t errcap)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if ((uint64_t)st.st_size != seg_size) {
        snprintf(err, errcap, "segment has %lld bytes, not %u", (long long)st.st_size, seg_size);
        return LB_EPROTO;
    }
    static const char zeros[65536];
    for (uint64_t off = from; off < seg_size;) {
        size_t n = seg_size - off < sizeof(zeros) ? (size_t)(seg_size - off) : sizeof(zeros);
        ssize_t w = pwrite(fd, zeros, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (uint64_t)w;
    }
    return 0;
}

static int resolve(ps_daemon *d, const char *tenant, const char *timeline, const char *name,
                   lb_lsn cut, int fd, lb_wal_valid *valid, int depth, char *err, size_t errcap);

/* All of fd, from its start. */
static int
read_fd(int fd, lb_buf *out)
{
    if (lseek(fd, 0, SEEK_SET) != 0)
        return -errno;
    return lb_read_fd(fd, out);
}

/* fd holds a branch's own history file from its safekeepers; put the
 * ancestor's history of m->pg_tli in front unless it is there already. */
static int
complete_history(ps_daemon *d, const ps_tlmeta *m, int fd, int depth, char *err, size_t errcap)
{
    lb_buf own = LB_BUF_INIT, anc = LB_BUF_INIT;
    int rc = read_fd(fd, &own);
    unsigned long first = own.len ? strtoul(own.data, NULL, 10) : 0;
    if (rc || first != m->pg_tli) {
        lb_buf_free(&own);
        return rc;
    }
    char tmp[PATH_MAX], name[32];
    snprintf(tmp, sizeof(tmp), "%s/tmp", d->conf.data_dir);
    int afd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (afd < 0)
        rc = -errno;
    snprintf(name, sizeof(name), "%08X.history", m->pg_tli);
    if (rc == 0) {
        lb_wal_valid unused;
        rc = resolve(d, m->tenant_id, m->ancestor_id, name, UINT64_MAX, afd, &unused, depth + 1,
                     err, errcap);
        if (rc == LB_ENOTFOUND)
            rc = 0; /* pg_tli is the first TLI there is: nothing before it */
        else if (rc == 0)
            rc = read_fd(afd, &anc);
    }
    if (afd >= 0)
        close(afd);
    if (rc == 0 && anc.len && anc.data[anc.len - 1] != '\n')
        rc = lb_buf_append(&anc, "\n", 1);
    if (rc == 0 && (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0))
        rc = -errno;
    if (rc == 0 && anc.len)
        rc = lb_write_all(fd, anc.data, anc.len);
    if (rc == 0)
        rc = lb_write_all(fd, own.data, own.len);
    lb_buf_free(&own);
    lb_buf_free(&anc);
    return rc;
}

static int
resolve(ps_daemon *d, const char *tenant, const char *timeline, const char *name, lb_lsn cut,
        int fd, lb_wal_valid *valid, int depth, char *err, size_t errcap)
{
    ps_tlmeta m;
    int rc = ps_get_timeline(d, tenant, timeline, &m);
    if (rc) {
        snprintf(err, errcap, "timeline %s/%s not found", tenant, timeline);
        return rc;
    }
    uint32_t tli;
    uint64_t segno = 0;
    lb_wal_file_kind kind = lb_wal_file_parse(name, m.wal_seg_size, &tli, &segno);
    bool history = kind == LB_WAL_FILE_HISTORY;
    if (kind == LB_WAL_FILE_BAD) {
        snprintf(err, errcap, "\"%.40s\" is not a WAL segment or history file name", name);
        ps_tlmeta_free(&m);
        return LB_EPARSE;
    }
    lb_lsn seg_start = lb_wal_segment_start(segno, m.wal_seg_size);
    bool inherited = m.ancestor_id[0] && tli <= m.pg_tli;
    if (inherited && depth >= MAX_DEPTH) {
        snprintf(err, errcap, "timeline %s has too many ancestors", timeline);
        rc = LB_ETOOBIG;
    } else if (inherited && history) {
        rc = resolve(d, tenant, m.ancestor_id, name, cut, fd, valid, depth + 1, err, errcap);
    } else if (inherited) {
        lb_lsn limit = m.ancestor_lsn < cut ? m.ancestor_lsn : cut;
        if (seg_start >= limit) {
            snprintf(err, errcap, "%s is past the branch point of timeline %s", name, timeline);
            rc = LB_ENOTFOUND;
        } else {
            rc = resolve(d, tenant, m.ancestor_id, name, limit, fd, valid, depth + 1, err, errcap);
        }
    } else {
        rc = fetch_own(d, &m, name, history, fd, valid, err, errcap);
        if (rc == 0 && history && m.ancestor_id[0] && depth < MAX_DEPTH)
            rc = complete_history(d, &m, fd, depth, err, errcap);
        if (rc == 0 && !history && cut < seg_start + m.wal_seg_size) {
            rc = cut_segment(fd, m.wal_seg_size, cut - seg_start, err, errcap);
            /* The branch's copy ends at the branch point for good, if the
             * answer reached it; one that stops short still does. */
            if (valid->bytes >= cut - seg_start)
                *valid = (lb_wal_valid){.bytes = cut - seg_start, .final = true};
        }
    }
    ps_tlmeta_free(&m);
    return rc;
}

int
ps_wal_fetch(ps_daemon *d, const char *tenant, const char *timeline, const char *name, int fd,
             lb_wal_valid *valid, char *err, size_t errcap)
{
    err[0] = '\0';
    *valid = (lb_wal_valid){.bytes = 0, .final = true};
    int rc = resolve(d, tenant, timeline, name, UINT64_MAX, fd, valid, 0, err, errcap);
    if (rc == 0 && lseek(fd, 0, SEEK_SET) != 0)
        rc = -errno;
    if (rc && !err[0])
        snprintf(err, errcap, "%s", lb_strerror(rc));
    return rc;
}

/* One safekeeper's answer to a status request, as ps_tli_at() weighs it. */
typedef struct sk_answer {
    uint64_t last_log_term;
    lb_lsn flush_lsn, commit_lsn;
    uint32_t tli; /* of the WAL just before the asked LSN, by its history */
} sk_answer;

/* Parse one status document; false if it is malformed. */
static bool
parse_status(json_t *doc, lb_lsn lsn, uint32_t first_tli, sk_answer *a)
{
    json_t *hist = json_object_get(doc, "term_history");
    json_t *llt = json_object_get(doc, "last_log_term");
    if (!json_is_array(hist) || !json_is_integer(llt) || json_integer_value(llt) < 0)
        return false;
    a->last_log_term = (uint64_t)json_integer_value(llt);
    a->tli = first_tli;
    /* The TLI of the WAL just before lsn: the last term that began before
     * it, else the timeline's first TLI. */
    size_t k;
    json_t *e;
    json_array_foreach(hist, k, e)
    {
        lb_lsn start;
        json_t *t = json_object_get(e, "tli");
        if (!json_is_string(json_object_get(e, "lsn")) ||
            lb_lsn_parse(json_string_value(json_object_get(e, "lsn")), &start) != 0 ||
            !json_is_integer(t) || json_integer_value(t) <= 0 || json_integer_value(t) > UINT32_MAX)
            return false;
        if (start < lsn)
            a->tli = (uint32_t)json_integer_value(t);
    }
    json_t *c = json_object_get(doc, "commit_lsn"), *f = json_object_get(doc, "flush_lsn");
    return json_is_string(c) && lb_lsn_parse(json_string_value(c), &a->commit_lsn) == 0 &&
           json_is_string(f) && lb_lsn_parse(json_string_value(f), &a->flush_lsn) == 0;
}

/*
 * Every safekeeper is asked, not the first that answers: one that just
 * restarted has a stale commit LSN (it learns its peers' positions within
 * a second), and one that missed an election has an old term history.
 *   - commit LSN: the highest any safekeeper reports. Each is an LSN that
 *     a majority flushed in its term, and an election starts the next term
 *     at or after it, so WAL before it is never truncated: the highest is
 *     the best lower bound of the quorum's commit LSN. With fewer than a
 *     majority answering it may be low, so a caller that would refuse an
 *     LSN above it gets LB_EHTTP (unsure) instead, through *answered.
 *   - the TLI at lsn: from the history of the safekeeper with the highest
 *     (last log term, flush LSN), the donor rule of an election: its log
 *     holds every committed term, so its history is right for any LSN
 *     below the commit LSN.
 */
int
ps_tli_at(ps_daemon *d, const ps_tlmeta *m, lb_lsn lsn, uint32_t *tli, lb_lsn *commit_lsn,
          char *err, size_t errcap)
{
    *tli = m->pg_tli;
    *commit_lsn = m->last_record_lsn;
    if (m->nsafekeepers == 0)
        return 0; /* no compute ever wrote to it: all of it is on pg_tli */
    lb_http_options opts = {.connect_timeout_ms = 1000, .timeout_ms = 5000, .max_attempts = 2};
    lb_http_client *http;
    int rc = lb_http_client_new(&opts, &http);
    if (rc)
        return rc;
    lb_http_client_set_token(http, d->token);
    size_t answered = 0;
    sk_answer best = {0};
    lb_lsn commit = 0;
    bool malformed = false;
    char last[400] = "";
    for (size_t i = 0; i < m->nsafekeepers; i++) {
        char url[512];
        snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s", m->safekeepers[i].http,
                 m->tenant_id, m->timeline_id);
        lb_buf body = LB_BUF_INIT;
        lb_http_call call = {.method = "GET", .url = url, .response_body = &body};
        lb_http_result res = LB_HTTP_RESULT_INIT;
        int hrc = lb_http_do(http, &call, &res);
        json_t *doc = NULL;
        sk_answer a;
        if (hrc == 0 && res.status == 200 &&
            (doc = json_loadb(body.data ? body.data : "", body.len, 0, NULL)) &&
            parse_status(doc, lsn, m->pg_tli, &a)) {
            if (answered == 0 || a.last_log_term > best.last_log_term ||
                (a.last_log_term == best.last_log_term && a.flush_lsn > best.flush_lsn))
                best = a;
            if (a.commit_lsn > commit)
                commit = a.commit_lsn;
            answered++;
        } else if (hrc == 0 && res.status == 200) {
            malformed = true;
            snprintf(last, sizeof(last), "safekeeper %s sent a malformed status",
                     m->safekeepers[i].http);
        } else {
            snprintf(last, sizeof(last),
                     "could not read the term history of %s from safekeeper %s: %s", m->timeline_id,
                     m->safekeepers[i].http,
                     hrc ? lb_http_client_error(http) : "unexpected answer");
        }
        json_decref(doc);
        lb_buf_free(&body);
        lb_http_result_free(&res);
    }
    lb_http_client_free(http);
    if (answered == 0) {
        snprintf(err, errcap, "%s", last);
        return malformed ? LB_EPROTO : LB_EHTTP;
    }
    *tli = best.tli;
    *commit_lsn = commit;
    if (commit < lsn && answered < m->nsafekeepers / 2 + 1) {
        char c[LB_LSN_STRLEN];
        snprintf(err, errcap,
                 "only %zu of %zu safekeepers answered, and their commit LSN %s is below the "
                 "LSN asked: %s",
                 answered, m->nsafekeepers, lb_lsn_format(commit, c), last);
        return LB_EHTTP;
    }
    return 0;
}

void
ps_report_consumer(ps_daemon *d, const ps_tlmeta *m, const char *name, lb_lsn applied)
{
    lb_http_options opts = {.connect_timeout_ms = 500, .timeout_ms = 2000, .max_attempts = 1};
    lb_http_client *http;
    if (lb_http_client_new(&opts, &http) != 0)
        return;
    lb_http_client_set_token(http, d->token);
    char body[200], url[400], p[LB_LSN_STRLEN];
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"applied_lsn\":\"%s\"}", name,
             lb_lsn_format(applied, p));
    const char *hdr[] = {"Content-Type: application/json"};
    for (size_t i = 0; i < m->nsafekeepers; i++) {
        snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s/consumer", m->safekeepers[i].http,
                 m->tenant_id, m->timeline_id);
        lb_http_call call = {.method = "POST",
                             .url = url,
                             .headers = hdr,
                             .nheaders = 1,
                             .body = body,
                             .body_len = strlen(body),
                             .retry_non_idempotent = true};
        lb_http_result res = LB_HTTP_RESULT_INIT;
        lb_http_do(http, &call, &res); /* best effort: the next report comes soon */
        lb_http_result_free(&res);
    }
    lb_http_client_free(http);
}
