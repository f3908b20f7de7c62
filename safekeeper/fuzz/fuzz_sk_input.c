/*
 * fuzz_sk_input.c: libFuzzer target for what reaches a safekeeper from
 * outside: the bytes a replication client sends to the walsender server,
 * the term history of an accept request, and the acceptor state file read
 * at start.
 *
 * The first input byte picks one of:
 *   - the walsender's input path, in the order walsender.c takes it: a
 *     startup packet and its parameters (replication, options naming the
 *     timeline, application_name), then typed messages with the server's
 *     size limit, each simple query through sk_repl_command_parse() and
 *     each CopyData through the replication message parser and the peer
 *     position parser;
 *   - one query string, straight to sk_repl_command_parse();
 *   - JSON for sk_term_history_from_json();
 *   - a state file for sk_acceptor_load(), as it is and with its checksum
 *     made right (a file an operator edited, or one that lies), so that
 *     the checks past the checksum are reached; and a valid state file
 *     with one field replaced by (or extended with) the input's JSON.
 * Properties: no crash, no out-of-bounds or undefined behaviour; what the
 * parsers accept holds their documented invariants (ids of 32 characters
 * at most, sorted term histories, a loaded state that saves and loads back
 * the same).
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acceptor.h"
#include "crc32c.h"
#include "errors.h"
#include "log.h"
#include "pgwire.h"
#include "repl_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WALSENDER_IN_MAX (1u << 20) /* walsender.c's IN_MAX */

static void
check_command(const sk_repl_command *cmd)
{
    if (strnlen(cmd->text, sizeof(cmd->text)) == sizeof(cmd->text) ||
        strnlen(cmd->arg, sizeof(cmd->arg)) == sizeof(cmd->arg))
        abort();
    switch (cmd->kind) {
    case SK_REPL_TIMELINE_HISTORY:
        if (cmd->tli == 0)
            abort();
        break;
    case SK_REPL_SHOW:
        if (!cmd->arg[0])
            abort();
        break;
    case SK_REPL_EMPTY:
    case SK_REPL_IDENTIFY_SYSTEM:
    case SK_REPL_START_REPLICATION:
    case SK_REPL_BAD_TIMELINE:
    case SK_REPL_BAD_SYNTAX:
    case SK_REPL_UNSUPPORTED:
        break;
    default:
        abort();
    }
}

static void
walsender_input(const uint8_t *data, size_t size)
{
    lb_pq_startup st;
    size_t used;
    size_t off = 0;
    /* Startup phase: SSL and GSS requests are declined and may repeat. */
    for (;;) {
        int rc = lb_pq_parse_startup(data + off, size - off, &st, &used);
        if (rc)
            return;
        if (used > size - off || used < 8)
            abort();
        off += used;
        if (st.kind == LB_PQ_SSL || st.kind == LB_PQ_GSSENC)
            continue;
        if (st.kind == LB_PQ_CANCEL)
            return;
        break;
    }
    (void)lb_pq_startup_param(&st, "replication");
    char tenant[SK_ID_LEN + 1], timeline[SK_ID_LEN + 1];
    sk_repl_options_parse(lb_pq_startup_param(&st, "options"), tenant, timeline);
    if (strlen(tenant) > SK_ID_LEN || strlen(timeline) > SK_ID_LEN)
        abort();
    (void)sk_id_valid(tenant);
    (void)sk_id_valid(timeline);
    const char *app = lb_pq_startup_param(&st, "application_name");
    char app_name[64];
    snprintf(app_name, sizeof(app_name), "%s", app ? app : "");

    /* Ready and streaming: typed messages. */
    while (off < size) {
        lb_pq_msg m;
        if (lb_pq_parse_msg(data + off, size - off, WALSENDER_IN_MAX, &m, &used) != 0)
            return;
        if (used > size - off || m.len > WALSENDER_IN_MAX)
            abort();
        off += used;
        if (m.type == 'Q') {
            if (m.len == 0 || m.body[m.len - 1] != '\0')
                return; /* the server ends the connection */
            sk_repl_command cmd;
            sk_repl_command_parse((const char *)m.body, &cmd);
            check_command(&cmd);
        } else if (m.type == 'd') {
            sk_peer_msg pm;
            if (sk_peer_msg_parse(m.body, m.len, &pm) == 0 &&
                (strlen(pm.tenant_id) != SK_ID_LEN || strlen(pm.timeline_id) != SK_ID_LEN ||
                 pm.last_log_term > pm.term))
                abort();
            lb_pq_repl r;
            if (lb_pq_parse_repl(m.body, m.len, &r) == 0 && r.kind == 'w' &&
                (r.wal_len > m.len || (r.wal_len && !r.wal)))
                abort();
        } else if (m.type == 'X') {
            return;
        }
    }
}

static void
term_history(const uint8_t *data, size_t size)
{
    json_t *arr = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!arr)
        return;
    static sk_term_entry h[SK_MAX_TERM_HISTORY], back[SK_MAX_TERM_HISTORY];
    size_t n = 0, cap = size % 2 ? SK_MAX_TERM_HISTORY : 4;
    char msg[200] = "";
    int rc = sk_term_history_from_json(arr, h, cap, &n, msg, sizeof(msg));
    if (rc == 0) {
        if (n > cap)
            abort();
        for (size_t i = 0; i < n; i++)
            if (h[i].term == 0 || h[i].tli == 0 ||
                (i > 0 && (h[i].term <= h[i - 1].term || h[i].start_lsn < h[i - 1].start_lsn)))
                abort();
        /* What was accepted round-trips through its JSON form. */
        json_t *again = sk_term_history_to_json(h, n);
        size_t m = 0;
        if (sk_term_history_from_json(again, back, cap, &m, msg, sizeof(msg)) != 0 || m != n ||
            memcmp(h, back, n * sizeof(h[0])) != 0)
            abort();
        json_decref(again);
    } else if (rc != LB_EPARSE || !msg[0] || strnlen(msg, sizeof(msg)) == sizeof(msg)) {
        abort();
    }
    json_decref(arr);
}

static char state_path[64], saved_path[64];

static void
remove_files(void)
{
    unlink(state_path);
    unlink(saved_path);
}

static int
write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(bytes, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* The checksum the loader expects: CRC-32C of the compact, key-sorted dump
 * of everything but "crc32c" (acceptor.c). */
static char *
with_right_checksum(const uint8_t *data, size_t size, size_t *len)
{
    json_t *obj = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    json_object_del(obj, "crc32c");
    char *dump = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (dump) {
        json_object_set_new(obj, "crc32c", json_integer(lb_crc32c(dump, strlen(dump))));
        free(dump);
    }
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(obj);
    if (text)
        *len = strlen(text);
    return text;
}

static void
check_state(const sk_acceptor_state *st)
{
    if (!sk_id_valid(st->tenant_id) || !sk_id_valid(st->timeline_id) ||
        st->nhistory > SK_MAX_TERM_HISTORY || st->nconsumers > SK_MAX_CONSUMERS ||
        sk_last_log_term(st) > st->term ||
        strnlen(st->compute, sizeof(st->compute)) == sizeof(st->compute))
        abort();
    for (size_t i = 0; i < st->nhistory; i++)
        if (i > 0 && (st->history[i].term <= st->history[i - 1].term ||
                      st->history[i].start_lsn < st->history[i - 1].start_lsn))
            abort();
    if (st->nhistory && st->history[0].start_lsn < st->start_lsn)
        abort();
    for (size_t i = 0; i < st->nconsumers; i++)
        if (strnlen(st->consumers[i].name, sizeof(st->consumers[i].name)) ==
            sizeof(st->consumers[i].name))
            abort();
}

static void state_file(const uint8_t *data, size_t size, bool fix_checksum);

/* A valid state with one field set to the JSON in data (or to data as a
 * string when it is not JSON), or removed when data is empty. */
static void
state_field(const uint8_t *data, size_t size)
{
    static const char *const fields[] = {
        "version",   "tenant_id", "timeline_id",  "system_id",     "wal_seg_size", "start_lsn",
        "start_tli", "term",      "term_history", "flush_lsn",     "commit_lsn",   "offloaded_lsn",
        "compute",   "consumers", "crc32c",       "unknown_field",
    };
    if (size < 1)
        return;
    const char *field = fields[data[0] % (sizeof(fields) / sizeof(fields[0]))];
    static sk_acceptor_state st;
    sk_acceptor_init(&st, "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210",
                     7301234567890123456ULL, 16 * 1024 * 1024, 0x1000028, 1);
    st.term = 5;
    st.history[0] = (sk_term_entry){1, 0x1000028, 2};
    st.history[1] = (sk_term_entry){3, 0x3000100, 3};
    st.nhistory = 2;
    st.compute_term = 3;
    strcpy(st.compute, "host=127.0.0.1 port=5432");
    st.nconsumers = 1;
    strcpy(st.consumers[0].name, "ps-0");
    json_t *obj = sk_acceptor_to_json(&st);
    if (size == 1) {
        json_object_del(obj, field);
    } else {
        json_t *v = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
        if (!v)
            v = json_stringn((const char *)data + 1, size - 1);
        if (v)
            json_object_set_new(obj, field, v);
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    if (text)
        state_file((const uint8_t *)text, strlen(text), strcmp(field, "crc32c") != 0);
    free(text);
}

static void
state_file(const uint8_t *data, size_t size, bool fix_checksum)
{
    static sk_acceptor_state st, back;
    if (!state_path[0]) {
        /* tmpfs when there is one: a save fsyncs */
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(state_path, sizeof(state_path), "%s/fuzz_sk_state.%ld", dir, (long)getpid());
        snprintf(saved_path, sizeof(saved_path), "%s/fuzz_sk_saved.%ld", dir, (long)getpid());
        atexit(remove_files);
    }
    char *text = NULL;
    size_t len = size;
    if (fix_checksum && !(text = with_right_checksum(data, size, &len)))
        return;
    if (write_file(state_path, text ? (const void *)text : (const void *)data, len) != 0)
        abort();
    free(text);
    int rc = sk_acceptor_load(state_path, &st);
    if (rc == 0) {
        check_state(&st);
        /* A loaded state saves and loads back the same. */
        if (sk_acceptor_save(saved_path, &st) != 0 || sk_acceptor_load(saved_path, &back) != 0)
            abort();
        if (strcmp(st.tenant_id, back.tenant_id) != 0 || st.term != back.term ||
            st.nhistory != back.nhistory ||
            memcmp(st.history, back.history, st.nhistory * sizeof(st.history[0])) != 0 ||
            st.compute_term != back.compute_term || strcmp(st.compute, back.compute) != 0 ||
            st.nconsumers != back.nconsumers || st.system_id != back.system_id ||
            st.flush_lsn != back.flush_lsn || st.commit_lsn != back.commit_lsn)
            abort();
    } else if (rc != LB_EPARSE && rc != LB_ECRC) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        /* The state loader logs what it refuses: not the fuzzer's output. */
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
            lb_log_set_fd(fd);
        quiet = true;
    }
    if (size < 1)
        return 0;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    switch (data[0] % 6) {
    case 0:
        walsender_input(rest, n);
        break;
    case 1: {
        char *q = malloc(n + 1);
        memcpy(q, rest, n);
        q[n] = '\0';
        sk_repl_command cmd;
        sk_repl_command_parse(q, &cmd);
        check_command(&cmd);
        char tenant[SK_ID_LEN + 1], timeline[SK_ID_LEN + 1];
        sk_repl_options_parse(q, tenant, timeline);
        if (strlen(tenant) > SK_ID_LEN || strlen(timeline) > SK_ID_LEN)
            abort();
        free(q);
        break;
    }
    case 2:
        term_history(rest, n);
        break;
    case 3:
        state_file(rest, n, false);
        break;
    case 4:
        state_file(rest, n, true);
        break;
    case 5:
        state_field(rest, n);
        break;
    }
    return 0;
}
