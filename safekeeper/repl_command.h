/*
 * repl_command.h: what a replication client says to the walsender server,
 * parsed without a connection: the timeline named in the startup options,
 * and the commands of the replication protocol's simple queries.
 *
 * Pure functions over strings from the network (no I/O, no state), so that
 * they can be unit-tested and fuzzed apart from the server.
 *
 * Callers: walsender.c; its unit test and fuzz target.
 */
#ifndef SK_REPL_COMMAND_H
#define SK_REPL_COMMAND_H

#include <stdint.h>

#include "acceptor.h"
#include "lsn.h"

/* The timeline a client names in its startup options:
 * "-c tenant_id=<id> -c timeline_id=<id>" (also "--tenant_id=<id>").
 * tenant and timeline get the values given ("" if absent); a value too
 * long to be an id gives "", never a truncated copy that might look like
 * one. The caller checks them with sk_id_valid(). options may be NULL. */
void sk_repl_options_parse(const char *options, char tenant[SK_ID_LEN + 1],
                           char timeline[SK_ID_LEN + 1]);

typedef enum sk_repl_kind {
    SK_REPL_EMPTY, /* nothing but spaces and semicolons */
    SK_REPL_IDENTIFY_SYSTEM,
    SK_REPL_TIMELINE_HISTORY,  /* tli */
    SK_REPL_SHOW,              /* arg: the parameter's name */
    SK_REPL_START_REPLICATION, /* start, tli (0: the current timeline) */
    SK_REPL_START_PEER_STREAM, /* a peer safekeeper's position stream (peers.c) */
    SK_REPL_BAD_TIMELINE,      /* TIMELINE_HISTORY with arg not a timeline id */
    SK_REPL_BAD_SYNTAX,        /* START_REPLICATION that does not parse */
    SK_REPL_UNSUPPORTED,       /* any other command */
} sk_repl_kind;

typedef struct sk_repl_command {
    sk_repl_kind kind;
    lb_lsn start;
    uint32_t tli;
    char arg[64];
    char text[256]; /* the query, trimmed (and cut to fit), for messages */
} sk_repl_command;

/* Parse one simple query: IDENTIFY_SYSTEM, TIMELINE_HISTORY n,
 * SHOW name, START_REPLICATION [SLOT s] [PHYSICAL] X/X [TIMELINE n].
 * Keywords are case-insensitive; a trailing semicolon is allowed. Every
 * input gives one of the kinds above. */
void sk_repl_command_parse(const char *query, sk_repl_command *cmd);

/*
 * The peer stream: after START_PEER_STREAM (the connection's
 * application_name names the peer), each CopyData from the peer carries
 * one position of one timeline, fixed size, integers big-endian:
 *   'p', tenant id (32 hex), timeline id (32 hex), term (8),
 *   last log term (8), flush LSN (8).
 */
#define SK_PEER_MSG_LEN (1 + 2 * SK_ID_LEN + 3 * 8)

typedef struct sk_peer_msg {
    char tenant_id[SK_ID_LEN + 1];
    char timeline_id[SK_ID_LEN + 1];
    uint64_t term, last_log_term;
    lb_lsn flush_lsn;
} sk_peer_msg;

/* Encode m into out[SK_PEER_MSG_LEN]. */
void sk_peer_msg_encode(const sk_peer_msg *m, uint8_t out[SK_PEER_MSG_LEN]);
/* Decode a CopyData body: 0, or LB_EPARSE for a wrong size or kind, ids
 * that are not ids, or last_log_term > term. */
int sk_peer_msg_parse(const void *bytes, size_t n, sk_peer_msg *m);

#endif
