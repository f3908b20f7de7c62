/*
 * timeline.c: a timeline's acceptor state, WAL and positions (timeline.h).
 *
 * The WAL arriving from the compute is also decoded as it is appended, so
 * that end_lsn (the end of the last whole record) is always known: an
 * election must start a new term at a record boundary, and a crash may
 * leave half a record behind. Decoding here checks each record's CRC, so a
 * corrupt stream is noticed before it is acknowledged.
 *
 * Durability order: WAL bytes are written, then fsynced in sk_timeline_sync(); only
 * then do flush_lsn and end_lsn move. The acceptor state (term, history)
 * is written with an atomic replace before any answer that depends on it.
 * Position hints in the state file are refreshed lazily (at most every
 * STATE_HINT_BYTES of WAL) because on open the true end is re-derived by
 * decoding forward from the hint.
 */
#include "timeline.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "event_loop.h"
#include "fileio.h"
#include "log.h"
#include "wal.h"

#define STATE_FILE "safekeeper.state"
#define STATE_HINT_BYTES (16u * 1024 * 1024)
#define MAX_PEERS 16
#define READ_CHUNK (256u * 1024)

typedef struct peer_pos {
    bool known;
    uint64_t term;
    uint64_t last_log_term;
    lb_lsn flush_lsn;
} peer_pos;

struct sk_timeline {
    char dir[PATH_MAX];
    char state_path[PATH_MAX + 32];
    sk_acceptor_state st;
    sk_wal_store *wal;
    lb_wal_decoder *dec; /* decodes appended WAL from end_lsn on */
    lb_lsn start_lsn;    /* first LSN of WAL on safekeepers */
    lb_lsn write_lsn, flush_lsn, end_lsn, commit_lsn;
    lb_lsn pending_end; /* decoder's valid end over written, unsynced bytes */
    lb_lsn hint_saved_at;
    bool broken;
    int quorum_members;
    peer_pos peers[MAX_PEERS];
    /* when each consumer last reported (monotonic ms; set at open), and
     * how long one that stops reporting holds WAL back */
    int64_t consumer_seen_ms[SK_MAX_CONSUMERS];
    int64_t consumer_ttl_ms;
    /* an accept between accept_begin and accept_finish: its term (0: none),
     * the next LSN accept_write takes, and the term's history entry */
    uint64_t accepting;
    lb_lsn accept_pos;
    sk_term_entry accept_last;
};

const sk_acceptor_state *
sk_timeline_state(const sk_timeline *tl)
{
    return &tl->st;
}

const char *
sk_timeline_dir(const sk_timeline *tl)
{
    return tl->dir;
}

lb_lsn
sk_timeline_write_lsn(const sk_timeline *tl)
{
    return tl->write_lsn;
}

lb_lsn
sk_timeline_flush_lsn(const sk_timeline *tl)
{
    return tl->flush_lsn;
}

lb_lsn
sk_timeline_end_lsn(const sk_timeline *tl)
{
    return tl->end_lsn;
}

lb_lsn
sk_timeline_commit_lsn(const sk_timeline *tl)
{
    return tl->commit_lsn;
}

lb_lsn
sk_timeline_serve_lsn(const sk_timeline *tl)
{
    return tl->commit_lsn < tl->flush_lsn ? tl->commit_lsn : tl->flush_lsn;
}

lb_lsn
sk_timeline_start_lsn(const sk_timeline *tl)
{
    return tl->start_lsn;
}

bool
sk_timeline_broken(const sk_timeline *tl)
{
    return tl->broken;
}

const char *
sk_timeline_compute(const sk_timeline *tl)
{
    return tl->st.compute[0] && tl->st.compute_term == tl->st.term ? tl->st.compute : NULL;
}

uint64_t
sk_timeline_compute_term(const sk_timeline *tl)
{
    return tl->st.compute_term;
}

uint32_t
sk_timeline_tli_at(const sk_timeline *tl, lb_lsn lsn)
{
    uint32_t tli = sk_history_tli_at(tl->st.history, tl->st.nhistory, lsn);
    return tli ? tli : tl->st.start_tli;
}

void
sk_timeline_set_quorum(sk_timeline *tl, int members)
{
    tl->quorum_members = members > 0 ? members : 1;
}

/* ---- state -------------------------------------------------------------- */

static int
save_state(sk_timeline *tl)
{
    tl->st.flush_lsn = tl->end_lsn;
    tl->st.commit_lsn = tl->commit_lsn;
    int rc = sk_acceptor_save(tl->state_path, &tl->st);
    if (rc) {
        lb_error("could not write state file \"%s\": %s", tl->state_path, lb_strerror(rc));
        return rc;
    }
    tl->hint_saved_at = tl->end_lsn;
    return 0;
}

/* Restart the decoder at a record boundary. */
static int
reset_decoder(sk_timeline *tl, lb_lsn at)
{
    lb_wal_decoder_free(tl->dec);
    tl->dec = NULL;
    int rc = lb_wal_decoder_new(at, tl->st.wal_seg_size, &tl->dec);
    if (rc) {
        lb_error("could not start WAL decoder at %X/%X: %s", LB_LSN_ARGS(at), lb_strerror(rc));
        return rc;
    }
    if (tl->st.system_id)
        lb_wal_decoder_expect_sysid(tl->dec, tl->st.system_id);
    tl->pending_end = at;
    return 0;
}

/* Decode bytes (which start at the decoder's feed position); advance
 * pending_end over every whole record. */
static int
decode(sk_timeline *tl, const void *bytes, size_t n)
{
    int rc = lb_wal_decoder_feed(tl->dec, bytes, n);
    if (rc)
        return rc;
    lb_wal_record rec;
    while ((rc = lb_wal_decoder_next(tl->dec, &rec)) == 0)
        tl->pending_end = rec.end_lsn;
    if (rc == LB_ETRUNCATED)
        return 0;
    lb_error("invalid WAL received: %s", lb_wal_decoder_errmsg(tl->dec));
    return LB_EPROTO;
}

/* Find the end of valid WAL: decode from the hint (a record boundary)
 * through the stored segments until the WAL stops. */
static int
find_end_of_wal(sk_timeline *tl)
{
    lb_lsn from = tl->st.flush_lsn > tl->start_lsn ? tl->st.flush_lsn : tl->start_lsn;
    /* The start of the current term is a record boundary too, and never
     * later than the truth. */
    if (tl->st.nhistory && tl->st.history[tl->st.nhistory - 1].start_lsn > from)
        from = tl->st.history[tl->st.nhistory - 1].start_lsn;
    int rc = reset_decoder(tl, from);
    if (rc)
        return rc;
    char *buf = malloc(READ_CHUNK);
    if (!buf)
        return -ENOMEM;
    lb_lsn pos = from;
    /* After an fsync failure only WAL up to the last durable LSN counts;
     * inside an accept, only WAL up to where the logs agree. */
    lb_lsn cap = tl->st.fsync_failed_lsn ? tl->st.fsync_failed_lsn : UINT64_MAX;
    for (;;) {
        uint32_t tli = sk_timeline_tli_at(tl, pos);
        uint64_t segno = lb_wal_segno(pos, tl->st.wal_seg_size);
        if (!tli || pos >= cap || !sk_wal_store_has_segment(tl->wal, tli, segno))
            break;
        size_t n = READ_CHUNK - (size_t)(pos % READ_CHUNK);
        if (n > cap - pos)
            n = (size_t)(cap - pos);
        rc = sk_wal_store_read(tl->wal, tli, pos, buf, n);
        if (rc)
            break;
        rc = lb_wal_decoder_feed(tl->dec, buf, n);
        if (rc)
            break;
        lb_wal_record rec;
        while ((rc = lb_wal_decoder_next(tl->dec, &rec)) == 0)
            tl->pending_end = rec.end_lsn;
        if (rc != LB_ETRUNCATED) {
            /* Zeros or a torn record: the end of WAL. Anything else is
             * logged; the end is still the last whole record. */
            if (rc != LB_WAL_END)
                lb_info("end of WAL at a torn or invalid record: %s",
                        lb_wal_decoder_errmsg(tl->dec));
            rc = 0;
            break;
        }
        rc = 0;
        pos += n;
    }
    free(buf);
    if (rc)
        return rc;
    tl->end_lsn = tl->flush_lsn = tl->write_lsn = tl->pending_end;
    /* Bytes past the end are garbage (a torn write): clear them so that
     * nothing past end_lsn can ever be served or decoded as WAL. */
    uint32_t tli = sk_timeline_tli_at(tl, tl->end_lsn);
    if (tli &&
        sk_wal_store_has_segment(tl->wal, tli, lb_wal_segno(tl->end_lsn, tl->st.wal_seg_size))) {
        rc = sk_wal_store_truncate(tl->wal, tli, tl->end_lsn);
        if (rc)
            return rc;
    }
    if (tl->st.fsync_failed_lsn) {
        lb_warn("WAL after %X/%X was not trusted (an fsync failure, or an accept cut short): "
                "cut back to %X/%X",
                LB_LSN_ARGS(tl->st.fsync_failed_lsn), LB_LSN_ARGS(tl->end_lsn));
        tl->st.fsync_failed_lsn = 0;
        rc = save_state(tl);
        if (rc)
            return rc;
    }
    return reset_decoder(tl, tl->end_lsn);
}

/* Whether dir exists and holds anything. */
static bool
has_any_file(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno != ENOENT; /* unreadable: assume it holds something */
    struct dirent *e;
    bool any = false;
    while (!any && (e = readdir(d)) != NULL)
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

static int
timeline_new(const char *dir, sk_timeline **out)
{
    sk_timeline *tl = calloc(1, sizeof(*tl));
    if (!tl)
        return -ENOMEM;
    snprintf(tl->dir, sizeof(tl->dir), "%s", dir);
    snprintf(tl->state_path, sizeof(tl->state_path), "%s/%s", dir, STATE_FILE);
    tl->quorum_members = 3;
    tl->consumer_ttl_ms = SK_CONSUMER_TTL_DEFAULT_MS;
    int64_t now = lb_mono_ms();
    for (size_t i = 0; i < SK_MAX_CONSUMERS; i++)
        tl->consumer_seen_ms[i] = now; /* loaded ones get a full ttl from now */
    *out = tl;
    return 0;
}

int
sk_timeline_open(const char *dir, sk_timeline **out)
{
    sk_timeline *tl;
    int rc = timeline_new(dir, &tl);
    if (rc)
        return rc;
    rc = sk_acceptor_load(tl->state_path, &tl->st);
    if (rc == 0)
        rc = sk_wal_store_open(dir, tl->st.wal_seg_size, &tl->wal);
    if (rc == 0) {
        tl->start_lsn = tl->st.start_lsn;
        tl->commit_lsn = tl->st.commit_lsn;
        rc = find_end_of_wal(tl);
    }
    if (rc) {
        lb_error("could not open timeline \"%s\": %s", dir, lb_strerror(rc));
        sk_timeline_close(tl);
        return rc;
    }
    if (tl->commit_lsn > tl->end_lsn)
        tl->commit_lsn = tl->end_lsn; /* a hint from before a truncation */
    lb_info("timeline opened tenant=%s timeline=%s term=%llu end_lsn=%X/%X commit_lsn=%X/%X",
            tl->st.tenant_id, tl->st.timeline_id, (unsigned long long)tl->st.term,
            LB_LSN_ARGS(tl->end_lsn), LB_LSN_ARGS(tl->commit_lsn));
    *out = tl;
    return 0;
}

int
sk_timeline_create(const char *root, const sk_timeline_params *p, sk_timeline **out)
{
    if (!sk_id_valid(p->tenant_id) || !sk_id_valid(p->timeline_id) ||
        !lb_wal_seg_size_valid(p->wal_seg_size) || p->pg_tli == 0 || p->system_id == 0)
        return -EINVAL;
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s/%s", root, p->tenant_id, p->timeline_id) >=
        sizeof(dir))
        return -ENAMETOOLONG;
    sk_timeline *tl;
    int rc = timeline_new(dir, &tl);
    if (rc)
        return rc;
    int lrc = sk_acceptor_load(tl->state_path, &tl->st);
    if (lrc == 0) {
        bool same = tl->st.system_id == p->system_id && tl->st.wal_seg_size == p->wal_seg_size;
        free(tl);
        if (!same)
            return LB_EEXIST;
        return sk_timeline_open(dir, out);
    }
    /* Only a timeline that never existed here is initialized. A state
     * file that exists but does not load (CRC, parse or I/O error), or WAL
     * without a state file, is what is left of a timeline whose votes and
     * WAL others may count on: starting it afresh would forget promises
     * and acknowledged WAL. */
    if (lrc != -ENOENT || has_any_file(dir)) {
        lb_error("refusing to initialize timeline \"%s\": %s", dir,
                 lrc != -ENOENT ? "its state file exists but could not be loaded"
                                : "it holds files but no state file");
        lb_error("detail: state file \"%s\": %s. Repair or remove the directory by hand.",
                 tl->state_path, lb_strerror(lrc));
        free(tl);
        return LB_ECONFLICT;
    }
    rc = lb_mkdir_p_durable(dir, 0700);
    if (rc) {
        free(tl);
        return rc;
    }
    /* A timeline with no term yet: WAL starts at start_lsn on pg_tli. The
     * first election turns this into the first history entry. */
    sk_acceptor_init(&tl->st, p->tenant_id, p->timeline_id, p->system_id, p->wal_seg_size,
                     p->start_lsn, p->pg_tli);
    tl->start_lsn = p->start_lsn;
    tl->end_lsn = tl->flush_lsn = tl->write_lsn = p->start_lsn;
    tl->commit_lsn = p->start_lsn;
    rc = sk_wal_store_open(dir, p->wal_seg_size, &tl->wal);
    if (rc == 0)
        rc = save_state(tl);
    if (rc == 0)
        rc = reset_decoder(tl, p->start_lsn);
    if (rc) {
        sk_timeline_close(tl);
        return rc;
    }
    lb_info("timeline created tenant=%s timeline=%s start_lsn=%X/%X tli=%u", p->tenant_id,
            p->timeline_id, LB_LSN_ARGS(p->start_lsn), p->pg_tli);
    *out = tl;
    return 0;
}

void
sk_timeline_close(sk_timeline *tl)
{
    if (!tl)
        return;
    if (tl->wal && !tl->broken && tl->end_lsn != tl->hint_saved_at)
        save_state(tl);
    sk_wal_store_close(tl->wal);
    lb_wal_decoder_free(tl->dec);
    free(tl);
}

int
sk_timeline_remove_dir(const char *root, const char *tenant_id, const char *timeline_id)
{
    if (!sk_id_valid(tenant_id) || !sk_id_valid(timeline_id))
        return -EINVAL;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s/%s", root, tenant_id, timeline_id);
    return lb_rm_rf(dir);
}

/* ---- receiving ------------------------------------------------------------ */

void
sk_timeline_stream_start(const sk_timeline *tl, lb_lsn *start, uint32_t *tli)
{
    /* At the very start of a term the stream begins at the start of the
     * segment holding the term's first LSN: the compute's first segment on
     * its new timeline carries the old WAL before that point, which this
     * safekeeper may not have (the first term of a timeline), and a reader
     * must be able to read the page headers before the term's start. */
    const sk_term_entry *cur = tl->st.nhistory ? &tl->st.history[tl->st.nhistory - 1] : NULL;
    *tli = cur ? cur->tli : 0;
    if (cur && tl->write_lsn == cur->start_lsn)
        *start = cur->start_lsn - cur->start_lsn % tl->st.wal_seg_size;
    else
        *start = tl->write_lsn;
}

int
sk_timeline_append(sk_timeline *tl, uint64_t term, lb_lsn lsn, const void *bytes, size_t n)
{
    if (tl->broken)
        return LB_EFSYNC;
    if (term != tl->st.term || sk_last_log_term(&tl->st) != term)
        return LB_ESTALETERM;
    const sk_term_entry *cur = &tl->st.history[tl->st.nhistory - 1];
    const char *p = bytes;
    if (lsn + n <= tl->write_lsn && lsn >= cur->start_lsn)
        return 0; /* a resend of what we have */
    if (lsn > tl->write_lsn) {
        lb_error("gap in received WAL: expected %X/%X, got %X/%X", LB_LSN_ARGS(tl->write_lsn),
                 LB_LSN_ARGS(lsn));
        return LB_EPROTO;
    }
    int rc;
    if (lsn < cur->start_lsn) {
        /* The segment prefix before the term's start (see stream_start):
         * store it in the new timeline's segment, never decode it. */
        size_t pre = lsn + n <= cur->start_lsn ? n : (size_t)(cur->start_lsn - lsn);
        if (lsn >= cur->start_lsn - cur->start_lsn % tl->st.wal_seg_size) {
            rc = sk_wal_store_write(tl->wal, cur->tli, lsn, p, pre);
            if (rc)
                return rc;
        }
        p += pre;
        n -= pre;
        lsn += pre;
        if (n == 0)
            return 0;
    }
    if (lsn + n <= tl->write_lsn)
        return 0; /* all of it is here already */
    size_t skip = (size_t)(tl->write_lsn - lsn);
    p += skip;
    n -= skip;
    lsn += skip;
    if (n == 0)
        return 0;
    rc = sk_wal_store_write(tl->wal, cur->tli, lsn, p, n);
    if (rc)
        return rc;
    tl->write_lsn = lsn + n;
    rc = decode(tl, p, n);
    if (rc) {
        /* Drop what did not decode: the compute sends it again. Nothing
         * acknowledged is lost: a record is acknowledged only once flush
         * covers all of it, and it was decoded whole before that. */
        tl->write_lsn = tl->pending_end;
        if (tl->flush_lsn > tl->write_lsn)
            tl->flush_lsn = tl->write_lsn;
        reset_decoder(tl, tl->pending_end);
        return rc;
    }
    return 0;
}

static void update_commit(sk_timeline *tl);

int
sk_timeline_sync(sk_timeline *tl)
{
    if (tl->broken)
        return LB_EFSYNC;
    if (tl->flush_lsn == tl->write_lsn)
        return 0;
    int rc = sk_wal_store_sync(tl->wal);
    if (rc) {
        tl->broken = true;
        /* Remember the last LSN known durable, so that a restart cuts the
         * WAL back to it instead of trusting what the page cache holds. */
        if (!tl->st.fsync_failed_lsn) {
            tl->st.fsync_failed_lsn = tl->flush_lsn;
            int src = sk_acceptor_save(tl->state_path, &tl->st);
            if (src)
                lb_error("could not record the fsync failure in \"%s\": %s", tl->state_path,
                         lb_strerror(src));
        }
        lb_error("timeline broken by fsync failure tenant=%s timeline=%s flush_lsn=%X/%X",
                 tl->st.tenant_id, tl->st.timeline_id, LB_LSN_ARGS(tl->flush_lsn));
        return LB_EFSYNC;
    }
    tl->flush_lsn = tl->write_lsn;
    tl->end_lsn = tl->pending_end;
    update_commit(tl);
    if (tl->end_lsn - tl->hint_saved_at >= STATE_HINT_BYTES)
        save_state(tl); /* a hint only: failure is logged, not fatal */
    return 0;
}

/* ---- protocol ------------------------------------------------------------- */

int
sk_timeline_vote(sk_timeline *tl, uint64_t term, bool *granted)
{
    *granted = false;
    if (tl->broken)
        return LB_EFSYNC;
    if (term <= tl->st.term)
        return 0;
    if (!SK_TERM_REACHABLE(tl->st.term, term))
        return -ERANGE;
    /* Everything received is made durable (or dropped) before answering:
     * the end_lsn in our answer must be WAL we really hold. */
    int rc = sk_timeline_sync(tl);
    if (rc)
        return rc;
    uint64_t old = tl->st.term;
    sk_acceptor_vote(&tl->st, term);
    rc = save_state(tl);
    if (rc) {
        tl->st.term = old;
        return rc;
    }
    /* The stream of an older term's compute ends now: the receiver sees
     * sk_timeline_compute() == NULL and disconnects, and sk_timeline_append() refuses. */
    *granted = true;
    lb_info("voted tenant=%s timeline=%s term=%llu end_lsn=%X/%X", tl->st.tenant_id,
            tl->st.timeline_id, (unsigned long long)term, LB_LSN_ARGS(tl->end_lsn));
    return 0;
}

int
sk_timeline_accept_begin(sk_timeline *tl, uint64_t term, const sk_term_entry *history, size_t n,
                         lb_lsn end, lb_lsn *from)
{
    *from = end;
    tl->accepting = 0;
    if (tl->broken)
        return LB_EFSYNC;
    if (term < tl->st.term)
        return LB_ESTALETERM;
    if (n == 0 || history[n - 1].term != term || history[n - 1].start_lsn != end ||
        n > SK_MAX_TERM_HISTORY)
        return -EINVAL;
    if (!SK_TERM_REACHABLE(tl->st.term, term))
        return -ERANGE;
    if (sk_last_log_term(&tl->st) == term)
        return 1; /* accepted already (a retried request) */
    int rc = sk_timeline_sync(tl);
    if (rc)
        return rc;

    /* Where our log and the proposer's agree. The proposer's log ends at
     * `end`; what it had before its own new term is history[0..n-1). */
    lb_lsn common =
        sk_history_common_end(tl->st.history, tl->st.nhistory, tl->end_lsn, history, n - 1, end);
    if (common < tl->start_lsn)
        common = tl->start_lsn;
    if (common > tl->end_lsn)
        common = tl->end_lsn;
    /* The order makes a crash at any step safe:
     *   1. state: the term, the proposer's history, the end hint at
     *      `common`, and "no WAL past `common` counts" (the cap an fsync
     *      failure sets too) -- durable before any byte is cut, so a
     *      restart never claims WAL that is about to be zeroed;
     *   2. truncate past `common` (durable);
     *   3. (accept_write) the donor's bytes, checked record by record
     *      (CRC), written;
     *   4. (accept_finish) fsync; state: the new term's entry, the end at
     *      `end`, the cap lifted.
     * A restart after 1, 2 or 3 finds the end at or below `common` and
     * clears what lies past it; the proposer retries. */
    uint64_t old_term = tl->st.term;
    size_t old_n = tl->st.nhistory;
    sk_term_entry *old_history = malloc(sizeof(tl->st.history));
    if (!old_history)
        return -ENOMEM;
    memcpy(old_history, tl->st.history, sizeof(tl->st.history));
    tl->st.term = term;
    memcpy(tl->st.history, history, (n - 1) * sizeof(*history));
    tl->st.nhistory = n - 1;
    lb_lsn old_end = tl->end_lsn;
    tl->write_lsn = tl->flush_lsn = tl->end_lsn = common;
    if (tl->commit_lsn > common)
        tl->commit_lsn = common;
    tl->st.fsync_failed_lsn = common; /* untrusted past here until step 4 */
    rc = save_state(tl);
    if (rc) {
        /* nothing changed on disk: keep the old state in memory too */
        tl->st.term = old_term;
        tl->st.nhistory = old_n;
        memcpy(tl->st.history, old_history, sizeof(tl->st.history));
        tl->write_lsn = tl->flush_lsn = tl->end_lsn = old_end;
        tl->st.fsync_failed_lsn = 0;
        free(old_history);
        return rc;
    }
    free(old_history);
    if (common < old_end) {
        uint32_t tli = sk_history_tli_at(history, n - 1, common);
        if (!tli)
            tli = tl->st.start_tli;
        lb_info("truncating divergent WAL tenant=%s timeline=%s from=%X/%X to=%X/%X",
                tl->st.tenant_id, tl->st.timeline_id, LB_LSN_ARGS(common), LB_LSN_ARGS(old_end));
        rc = sk_wal_store_truncate(tl->wal, tli, common);
        if (rc)
            return rc;
    }
    /* Donor bytes are decoded as they arrive: every record whole and its
     * CRC right, and `end` a record boundary, or nothing is adopted. */
    if ((rc = reset_decoder(tl, common)) != 0)
        return rc;
    tl->accepting = term;
    tl->accept_pos = common;
    tl->accept_last = history[n - 1];
    *from = common;
    return 0;
}

int
sk_timeline_accept_write(sk_timeline *tl, uint64_t term, lb_lsn pos, const void *buf, size_t n)
{
    if (tl->broken)
        return LB_EFSYNC;
    if (tl->accepting != term || tl->st.term != term)
        return LB_ESTALETERM; /* a newer vote came in between */
    lb_lsn end = tl->accept_last.start_lsn;
    if (pos != tl->accept_pos || n > end - pos)
        return -EINVAL;
    uint32_t tli = sk_history_tli_at(tl->st.history, tl->st.nhistory, pos);
    if (!tli)
        tli = tl->st.start_tli;
    int rc = decode(tl, buf, n);
    if (rc)
        lb_error("donor sent WAL that does not decode at %X/%X", LB_LSN_ARGS(pos));
    if (rc == 0)
        rc = sk_wal_store_write(tl->wal, tli, pos, buf, n);
    if (rc) {
        tl->accepting = 0; /* the proposer starts over */
        return rc;
    }
    tl->accept_pos += n;
    return 0;
}

int
sk_timeline_accept_finish(sk_timeline *tl, uint64_t term)
{
    if (tl->broken)
        return LB_EFSYNC;
    if (tl->accepting != term || tl->st.term != term)
        return LB_ESTALETERM;
    tl->accepting = 0;
    lb_lsn end = tl->accept_last.start_lsn;
    int rc = 0;
    if (tl->accept_pos != end)
        rc = LB_ENOTFOUND; /* the WAL up to end never came */
    else if (tl->end_lsn < end && tl->pending_end != end) {
        lb_error("donor's WAL ends at %X/%X with a partial record, not at %X/%X",
                 LB_LSN_ARGS(tl->pending_end), LB_LSN_ARGS(end));
        rc = LB_EPROTO;
    }
    if (rc == 0)
        rc = sk_wal_store_sync(tl->wal);
    if (rc) {
        lb_error("could not take WAL from the donor tenant=%s timeline=%s at=%X/%X: %s",
                 tl->st.tenant_id, tl->st.timeline_id, LB_LSN_ARGS(tl->accept_pos),
                 lb_strerror(rc));
        if (rc == LB_EFSYNC)
            tl->broken = true;
        /* Keep what was fetched; the cap keeps it out of the end until the
         * proposer retries. */
        return rc;
    }
    tl->st.history[tl->st.nhistory++] = tl->accept_last;
    tl->write_lsn = tl->flush_lsn = tl->end_lsn = end;
    tl->st.fsync_failed_lsn = 0;
    rc = save_state(tl);
    if (rc)
        return rc;
    lb_info("accepted term tenant=%s timeline=%s term=%llu start_lsn=%X/%X tli=%u",
            tl->st.tenant_id, tl->st.timeline_id, (unsigned long long)term, LB_LSN_ARGS(end),
            tl->accept_last.tli);
    return reset_decoder(tl, end);
}

int
sk_timeline_accept(sk_timeline *tl, uint64_t term, const sk_term_entry *history, size_t n,
                   lb_lsn end, sk_fetch_fn fetch, void *fetch_arg)
{
    lb_lsn pos;
    int rc = sk_timeline_accept_begin(tl, term, history, n, end, &pos);
    if (rc)
        return rc > 0 ? 0 : rc;
    char *buf = NULL;
    while (pos < end && rc == 0) {
        if (!fetch) {
            rc = LB_ENOTFOUND;
            break;
        }
        if (!buf && !(buf = malloc(SK_ACCEPT_CHUNK))) {
            rc = -ENOMEM;
            break;
        }
        size_t want = SK_ACCEPT_CHUNK - (size_t)(pos % SK_ACCEPT_CHUNK);
        if (want > end - pos)
            want = (size_t)(end - pos);
        uint32_t tli = sk_history_tli_at(history, n - 1, pos);
        rc = fetch(fetch_arg, pos, pos + want, tli ? tli : tl->st.start_tli, buf);
        if (rc == 0)
            rc = sk_timeline_accept_write(tl, term, pos, buf, want);
        pos += want;
    }
    free(buf);
    if (rc) {
        lb_error("could not take WAL from the donor tenant=%s timeline=%s: %s", tl->st.tenant_id,
                 tl->st.timeline_id, lb_strerror(rc));
        tl->accepting = 0;
        return rc;
    }
    return sk_timeline_accept_finish(tl, term);
}

int
sk_timeline_elected(sk_timeline *tl, uint64_t term, const char *compute_conninfo)
{
    /* Term 0 on a timeline that never had an election would pass the
     * comparison below with an empty history. */
    if (term == 0 || term != tl->st.term || sk_last_log_term(&tl->st) != term)
        return LB_ESTALETERM;
    /* A majority holds WAL up to the term's start: it is committed, and
     * a compute restoring for this term may be served all of it. */
    lb_lsn term_start = tl->st.history[tl->st.nhistory - 1].start_lsn;
    if (tl->commit_lsn < term_start)
        tl->commit_lsn = term_start;
    if (!compute_conninfo)
        return 0;
    if (strlen(compute_conninfo) >= sizeof(tl->st.compute) || !compute_conninfo[0])
        return -EINVAL;
    if (tl->st.compute_term == term && strcmp(tl->st.compute, compute_conninfo) == 0)
        return 0; /* a retried request */
    char old[sizeof(tl->st.compute)];
    uint64_t old_term = tl->st.compute_term;
    strcpy(old, tl->st.compute);
    strcpy(tl->st.compute, compute_conninfo);
    tl->st.compute_term = term;
    int rc = save_state(tl);
    if (rc) {
        strcpy(tl->st.compute, old);
        tl->st.compute_term = old_term;
    }
    return rc;
}

static int
cmp_lsn_desc(const void *a, const void *b)
{
    lb_lsn x = *(const lb_lsn *)a, y = *(const lb_lsn *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void
update_commit(sk_timeline *tl)
{
    uint64_t term = tl->st.term;
    if (sk_last_log_term(&tl->st) != term || term == 0)
        return;
    lb_lsn flushes[MAX_PEERS + 1];
    int k = 0;
    flushes[k++] = tl->flush_lsn;
    for (int i = 0; i < MAX_PEERS; i++)
        if (tl->peers[i].known && tl->peers[i].term == term && tl->peers[i].last_log_term == term)
            flushes[k++] = tl->peers[i].flush_lsn;
    int need = tl->quorum_members / 2 + 1;
    if (k < need)
        return;
    qsort(flushes, (size_t)k, sizeof(flushes[0]), cmp_lsn_desc);
    lb_lsn c = flushes[need - 1];
    if (c > tl->commit_lsn)
        tl->commit_lsn = c;
}

void
sk_timeline_peer_flush(sk_timeline *tl, int peer, uint64_t term, uint64_t last_log_term,
                       lb_lsn flush_lsn)
{
    if (peer < 0 || peer >= MAX_PEERS)
        return;
    tl->peers[peer] = (peer_pos){true, term, last_log_term, flush_lsn};
    update_commit(tl);
}

/* ---- serving -------------------------------------------------------------- */

/* Which timeline's file holds the WAL at lsn. Normally the timeline of the
 * term that wrote it; but a timeline's first segment also carries the WAL
 * before its start (PostgreSQL copies it there when it switches), which is
 * the only copy of that prefix when the switch happened in the segment
 * where this timeline's WAL begins. So: the newest timeline whose first
 * segment is at or before lsn's segment and whose file exists. */
static uint32_t
segment_tli(const sk_timeline *tl, lb_lsn lsn)
{
    uint64_t segno = lb_wal_segno(lsn, tl->st.wal_seg_size);
    uint32_t want = sk_timeline_tli_at(tl, lsn);
    if (want && sk_wal_store_has_segment(tl->wal, want, segno))
        return want;
    for (size_t i = tl->st.nhistory; i-- > 0;) {
        const sk_term_entry *h = &tl->st.history[i];
        if (lb_wal_segno(h->start_lsn, tl->st.wal_seg_size) == segno && h->start_lsn > lsn &&
            sk_wal_store_has_segment(tl->wal, h->tli, segno))
            return h->tli;
    }
    return 0;
}

int
sk_timeline_read(sk_timeline *tl, lb_lsn lsn, void *buf, size_t n, lb_lsn limit)
{
    char *p = buf;
    while (n > 0) {
        size_t in_seg = tl->st.wal_seg_size - (size_t)(lsn % tl->st.wal_seg_size);
        size_t chunk = in_seg < n ? in_seg : n;
        if (lsn >= limit) {
            memset(p, 0, chunk);
        } else {
            size_t real = lsn + chunk <= limit ? chunk : (size_t)(limit - lsn);
            uint32_t tli = segment_tli(tl, lsn);
            if (!tli)
                return -ENOENT;
            int rc = sk_wal_store_read(tl->wal, tli, lsn, p, real);
            if (rc)
                return rc;
            memset(p + real, 0, chunk - real);
        }
        p += chunk;
        n -= chunk;
        lsn += chunk;
    }
    return 0;
}

json_t *
sk_timeline_status_json(const sk_timeline *tl)
{
    char w[LB_LSN_STRLEN], f[LB_LSN_STRLEN], e[LB_LSN_STRLEN], c[LB_LSN_STRLEN], s[LB_LSN_STRLEN];
    json_t *st = sk_acceptor_to_json(&tl->st);
    json_object_del(st, "flush_lsn");
    json_object_del(st, "commit_lsn");
    json_object_set_new(st, "write_lsn", json_string(lb_lsn_format(tl->write_lsn, w)));
    json_object_set_new(st, "flush_lsn", json_string(lb_lsn_format(tl->flush_lsn, f)));
    json_object_set_new(st, "end_lsn", json_string(lb_lsn_format(tl->end_lsn, e)));
    json_object_set_new(st, "commit_lsn", json_string(lb_lsn_format(tl->commit_lsn, c)));
    json_object_set_new(st, "start_lsn", json_string(lb_lsn_format(tl->start_lsn, s)));
    json_object_set_new(st, "last_log_term", json_integer((json_int_t)sk_last_log_term(&tl->st)));
    json_object_set_new(st, "broken", json_boolean(tl->broken));
    json_object_set_new(st, "streaming_from",
                        sk_timeline_compute(tl) ? json_string(sk_timeline_compute(tl))
                                                : json_null());
    return st;
}

int
sk_timeline_segment_path(const sk_timeline *tl, uint32_t tli, uint64_t segno, char *path,
                         size_t cap)
{
    return sk_wal_store_segment_path(tl->wal, tli, segno, path, cap);
}

int
sk_timeline_history_file(const sk_timeline *tl, uint32_t tli, lb_buf *out)
{
    /* The distinct timelines in order, each ending where the next starts.
     * PostgreSQL's format: "<parent tli>\t<switchpoint>\t<reason>\n".
     * A timeline's history is only served once WAL exists on it: before
     * its compute has promoted and streamed, PostgreSQL must not believe
     * the timeline exists (it would pick the next one when it promotes). */
    uint32_t prev = tl->st.start_tli;
    bool found = false;
    size_t start_len = out->len;
    for (size_t i = 0; i < tl->st.nhistory; i++) {
        const sk_term_entry *h = &tl->st.history[i];
        if (h->tli == prev)
            continue;
        if (h->tli > tli)
            break;
        int rc = lb_buf_printf(out, "%u\t%X/%X\tno recovery target specified\n", prev,
                               LB_LSN_ARGS(h->start_lsn));
        if (rc)
            return rc;
        prev = h->tli;
        if (h->tli == tli) {
            lb_lsn end = i + 1 < tl->st.nhistory ? tl->st.history[i + 1].start_lsn : tl->end_lsn;
            found = end > h->start_lsn;
            break;
        }
    }
    if (!found) {
        out->len = start_len;
        if (out->data)
            out->data[start_len] = '\0';
        return LB_ENOTFOUND;
    }
    return 0;
}

/* ---- offload and removal ---------------------------------------------------- */

void
sk_timeline_offload_range(const sk_timeline *tl, uint64_t *from, uint64_t *to)
{
    /* offloaded_lsn is 0 or a segment boundary (see sk_timeline_offloaded) */
    uint32_t seg = tl->st.wal_seg_size;
    *from = lb_wal_segno(tl->st.offloaded_lsn ? tl->st.offloaded_lsn : tl->start_lsn, seg);
    *to = lb_wal_segno(sk_timeline_serve_lsn(tl), seg); /* the segment holding it is not complete */
    if (*to < *from)
        *to = *from;
}

void
sk_timeline_set_consumer_ttl(sk_timeline *tl, int64_t ttl_ms)
{
    tl->consumer_ttl_ms = ttl_ms > 0 ? ttl_ms : SK_CONSUMER_TTL_DEFAULT_MS;
}

static bool
consumer_expired(const sk_timeline *tl, size_t i, int64_t now)
{
    return now - tl->consumer_seen_ms[i] > tl->consumer_ttl_ms;
}

lb_lsn
sk_timeline_removal_horizon(const sk_timeline *tl)
{
    lb_lsn h = tl->st.offloaded_lsn;
    int64_t now = lb_mono_ms();
    for (size_t i = 0; i < tl->st.nconsumers; i++)
        if (tl->st.consumers[i].lsn < h && !consumer_expired(tl, i, now))
            h = tl->st.consumers[i].lsn;
    return h;
}

/* Forget consumers that stopped reporting; true if any went. */
static bool
expire_consumers(sk_timeline *tl)
{
    int64_t now = lb_mono_ms();
    size_t kept = 0;
    for (size_t i = 0; i < tl->st.nconsumers; i++) {
        if (consumer_expired(tl, i, now)) {
            lb_info("consumer expired tenant=%s timeline=%s name=\"%s\" lsn=%X/%X",
                    tl->st.tenant_id, tl->st.timeline_id, tl->st.consumers[i].name,
                    LB_LSN_ARGS(tl->st.consumers[i].lsn));
            continue;
        }
        tl->st.consumers[kept] = tl->st.consumers[i];
        tl->consumer_seen_ms[kept++] = tl->consumer_seen_ms[i];
    }
    bool any = kept != tl->st.nconsumers;
    tl->st.nconsumers = kept;
    return any;
}

static int
remove_unneeded(sk_timeline *tl)
{
    lb_lsn h = sk_timeline_removal_horizon(tl);
    uint64_t segno = lb_wal_segno(h, tl->st.wal_seg_size);
    /* Never the segment holding the current term's start: it holds the
     * only copy of the WAL before the term on the term's timeline, which a
     * compute restoring for this term reads. */
    uint64_t keep = UINT64_MAX;
    if (tl->st.nhistory)
        keep = lb_wal_segno(tl->st.history[tl->st.nhistory - 1].start_lsn, tl->st.wal_seg_size);
    return segno ? sk_wal_store_remove_before(tl->wal, segno, keep) : 0;
}

int
sk_timeline_offloaded(sk_timeline *tl, uint64_t segno)
{
    lb_lsn lsn = segno * (lb_lsn)tl->st.wal_seg_size;
    if (lsn <= tl->st.offloaded_lsn)
        return 0;
    if (lsn > sk_timeline_serve_lsn(tl))
        return -EINVAL; /* only committed WAL held here is ever offloaded */
    tl->st.offloaded_lsn = lsn;
    int rc = save_state(tl);
    return rc ? rc : remove_unneeded(tl);
}

int
sk_timeline_consumer(sk_timeline *tl, const char *name, lb_lsn applied)
{
    size_t i;
    expire_consumers(tl);
    for (i = 0; i < tl->st.nconsumers; i++)
        if (strcmp(tl->st.consumers[i].name, name) == 0)
            break;
    if (i == tl->st.nconsumers) {
        if (i == SK_MAX_CONSUMERS)
            return LB_ETOOBIG;
        if (strlen(name) >= sizeof(tl->st.consumers[0].name) || !name[0])
            return -EINVAL;
        strcpy(tl->st.consumers[i].name, name);
        tl->st.nconsumers++;
    }
    tl->st.consumers[i].lsn = applied;
    tl->consumer_seen_ms[i] = lb_mono_ms();
    int rc = save_state(tl);
    return rc ? rc : remove_unneeded(tl);
}
