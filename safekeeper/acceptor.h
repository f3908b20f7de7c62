/*
 * acceptor.h: the acceptor state of one timeline on one safekeeper, and the
 * pure rules of the term/vote protocol over it.
 *
 * State: the highest term this safekeeper has promised (voted for), the
 * term history of the WAL it holds (which term wrote WAL from which LSN, on
 * which PostgreSQL timeline), and hints (flush, commit, offloaded LSNs)
 * that are persisted lazily and re-derived on start.
 *
 * Invariants:
 *   - term never decreases, and is persisted before a vote is answered;
 *   - term_history is sorted by term and by start LSN, both strictly
 *     increasing, and its last term is <= term;
 *   - the WAL held is exactly what the history's terms wrote: after an
 *     election, a tail that the new history does not contain is truncated.
 *
 * Callers: the safekeeper's HTTP API (vote, elected) and timeline code;
 * the proposer (election.c) uses the comparison helpers on states it reads.
 */
#ifndef SK_ACCEPTOR_H
#define SK_ACCEPTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lsn.h"

#define SK_ID_LEN 32           /* tenant and timeline ids: 32 lowercase hex chars */
#define SK_MAX_TERM_HISTORY 1024
#define SK_MAX_CONSUMERS 16
/* A term may move up by at most this much at once, and never past
 * SK_TERM_MAX: a proposer always asks for the highest term + 1, and a
 * request for INT64_MAX would otherwise leave no higher term for anyone. */
#define SK_TERM_MAX_STEP (1u << 20)
#define SK_TERM_MAX ((uint64_t)INT64_MAX - SK_TERM_MAX_STEP)
/* Whether a timeline promised `current` may take `term`. */
#define SK_TERM_REACHABLE(current, term)                                                           \
    ((term) <= SK_TERM_MAX && (term) <= (current) + SK_TERM_MAX_STEP)

typedef struct sk_term_entry {
    uint64_t term;
    lb_lsn start_lsn; /* first LSN written in this term */
    uint32_t tli;     /* PostgreSQL timeline of that WAL */
} sk_term_entry;

typedef struct sk_acceptor_state {
    char tenant_id[SK_ID_LEN + 1];
    char timeline_id[SK_ID_LEN + 1];
    uint64_t system_id;     /* PostgreSQL database system identifier (0: not yet known) */
    uint32_t wal_seg_size;
    lb_lsn start_lsn;       /* where the timeline's WAL on safekeepers begins */
    uint32_t start_tli;     /* PostgreSQL timeline of the WAL at start_lsn */
    uint64_t term;          /* highest term promised */
    size_t nhistory;
    sk_term_entry history[SK_MAX_TERM_HISTORY];
    lb_lsn flush_lsn;       /* hint: re-derived from the WAL on start */
    lb_lsn commit_lsn;      /* hint: re-learned from peers */
    lb_lsn offloaded_lsn;   /* WAL before this is in object storage */
    /* Set when an fsync of this WAL failed: the last LSN known durable.
     * Anything after it may exist only in a page cache that the kernel
     * has dropped or will drop, so on open the WAL is cut back to it. */
    lb_lsn fsync_failed_lsn;
    /* The compute to stream from, named by the proposer of compute_term
     * (kept so a restarted safekeeper resumes streaming). "" if none. */
    uint64_t compute_term;
    char compute[512];
    /* Consumers (pageservers, replicas) and the LSN each has applied: no
     * local WAL they still need is removed. */
    size_t nconsumers;
    struct sk_consumer {
        char name[64];
        lb_lsn lsn;
    } consumers[SK_MAX_CONSUMERS];
} sk_acceptor_state;

/* ---- persistence (timeline code) ---------------------------------------- */

/* Initialize a fresh state for a new timeline. */
void sk_acceptor_init(sk_acceptor_state *st, const char *tenant_id, const char *timeline_id,
                      uint64_t system_id, uint32_t wal_seg_size, lb_lsn start_lsn,
                      uint32_t start_tli);
/* Atomically and durably replace the state file at path (temp file, fsync,
 * rename, fsync dir). The file carries a CRC-32C of its content. */
int sk_acceptor_save(const char *path, const sk_acceptor_state *st);
/* Load and validate. -ENOENT if missing; LB_ECRC for a checksum mismatch;
 * LB_EPARSE (with a logged detail naming the file and field) when malformed
 * or when an invariant above does not hold. */
int sk_acceptor_load(const char *path, sk_acceptor_state *st);

/* JSON forms, for the HTTP API. Caller owns the returned reference. */
json_t *sk_acceptor_to_json(const sk_acceptor_state *st);
json_t *sk_term_history_to_json(const sk_term_entry *h, size_t n);
/* Parse a history array; validates ordering. 0 or LB_EPARSE with msg set. */
int sk_term_history_from_json(const json_t *arr, sk_term_entry *h, size_t cap, size_t *n,
                              char *msg, size_t msgcap);

/* ---- protocol rules (HTTP API, election) --------------------------------- */

/* Term of the last history entry, 0 if none: the "last log term". */
uint64_t sk_last_log_term(const sk_acceptor_state *st);
/* Grant a vote for term iff term > st->term; on grant st->term = term (the
 * caller must persist before answering). Returns true if granted. */
bool sk_acceptor_vote(sk_acceptor_state *st, uint64_t term);
/* Compare (last log term, flush LSN) pairs, the donor order: <0, 0, >0. */
int sk_donor_cmp(uint64_t term_a, lb_lsn flush_a, uint64_t term_b, lb_lsn flush_b);

/* The LSN up to which WAL written under history `mine` (ending at
 * my_flush) agrees with WAL written under history `theirs`: the end of the
 * longest common prefix of the two logs. Used to find where a divergent
 * tail starts. */
lb_lsn sk_history_common_end(const sk_term_entry *mine, size_t nmine, lb_lsn my_flush,
                             const sk_term_entry *theirs, size_t ntheirs, lb_lsn their_flush);
/* PostgreSQL timeline of the WAL at lsn under history h (0 if before it). */
uint32_t sk_history_tli_at(const sk_term_entry *h, size_t n, lb_lsn lsn);
/* true if s is 32 lowercase hex characters. */
bool sk_id_valid(const char *s);

#endif
