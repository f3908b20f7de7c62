/*
 * election.h: the proposer side of the term/vote protocol, as a library
 * (compute-ctl links it) and as `safekeeper elect` / `safekeeper announce`.
 *
 * sk_elect():
 *   1. read every safekeeper's state; propose term T = highest term + 1;
 *   2. ask each for its vote (a refusal because of a newer term makes the
 *      proposer retry above it);
 *   3. with a majority of votes, pick the donor with the highest
 *      (last log term, end of WAL); its end E starts term T, on PostgreSQL
 *      timeline max + 1;
 *   4. have every voter accept the donor's history plus (T, E, tli):
 *      voters truncate what the donor does not have and fetch what they
 *      lack from the donor. A majority must accept.
 * Then the compute restores to E and promotes, and sk_announce() tells
 * the safekeepers to stream from it.
 */
#ifndef SK_ELECTION_H
#define SK_ELECTION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "acceptor.h"
#include "lsn.h"

#define SK_ELECT_MAX 8

typedef struct sk_elect_params {
    const char *tenant_id;
    const char *timeline_id;
    const char *urls[SK_ELECT_MAX]; /* safekeepers' HTTP base URLs */
    int n;
    long timeout_ms;                /* per request; 0: 5000 */
    struct lb_auth_token *token;    /* the compute's token, sent with every request; not
                                       owned; NULL: none */
} sk_elect_params;

typedef struct sk_elect_result {
    uint64_t term;
    lb_lsn start_lsn;               /* E: where the new term's WAL starts */
    uint32_t tli;                   /* the new PostgreSQL timeline */
    uint32_t prev_tli;              /* the timeline the compute restores along */
    uint64_t system_id;
    uint32_t wal_seg_size;
    int donor;                      /* index into urls */
    char donor_url[256];
    int voters, acceptors;
    int accepted[SK_ELECT_MAX];     /* 1 for each safekeeper that accepted */
    sk_term_entry history[SK_MAX_TERM_HISTORY];
    size_t nhistory;                /* ends with (term, start_lsn, tli) */
} sk_elect_result;

/* Run an election. 0, or LB_ECONFLICT (no majority: err says why),
 * -EINVAL (bad parameters). err gets a one-line explanation. */
int sk_elect(const sk_elect_params *p, sk_elect_result *out, char *err, size_t errcap);
/* Tell every safekeeper to stream from the compute in the elected term. A
 * safekeeper takes the compute's address from a compute token's
 * "endpoint"; compute (host:port) counts only with a management token. A safekeeper that missed the
 * election (it was down) is brought into the term first: vote, accept the term's history from the
 * donor, then stream. *acked: how many now stream for the term. */
int sk_announce(const sk_elect_params *p, const sk_elect_result *r, const char *compute,
                int *acked);
/* The result as JSON (what `safekeeper elect` prints) and back. */
json_t *sk_elect_result_to_json(const sk_elect_params *p, const sk_elect_result *r);
int sk_elect_result_from_json(const json_t *j, sk_elect_result *r, char *err, size_t cap);

/* The commands: parse options, run, print the result as JSON on stdout. */
int sk_elect_main(int argc, char **argv);

#endif
