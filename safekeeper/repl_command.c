/*
 * repl_command.c: parsing a replication client's startup options and
 * commands (see repl_command.h).
 *
 * Everything here reads bytes a network peer chose: each buffer is bounded
 * and every copy is cut to its destination. A query longer than the
 * buffer is cut, which can only turn it into an unsupported or malformed
 * command.
 */
#include "repl_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errors.h"

static void
copy_id(char out[SK_ID_LEN + 1], const char *value)
{
    /* A longer value is not an id; cutting it could make it look like one. */
    if (strlen(value) > SK_ID_LEN)
        out[0] = '\0';
    else
        snprintf(out, SK_ID_LEN + 1, "%s", value);
}

void
sk_repl_options_parse(const char *options, char tenant[SK_ID_LEN + 1], char timeline[SK_ID_LEN + 1])
{
    tenant[0] = timeline[0] = '\0';
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", options ? options : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (strcmp(tok, "-c") == 0)
            continue;
        if (strncmp(tok, "-c", 2) == 0)
            tok += 2;
        while (*tok == '-')
            tok++;
        if (strncmp(tok, "tenant_id=", 10) == 0)
            copy_id(tenant, tok + 10);
        else if (strncmp(tok, "timeline_id=", 12) == 0)
            copy_id(timeline, tok + 12);
    }
}

void
sk_repl_command_parse(const char *query, sk_repl_command *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    char *text = cmd->text;
    snprintf(text, sizeof(cmd->text), "%s", query);
    /* Trim spaces and a trailing semicolon. */
    size_t n = strlen(text);
    while (n && (text[n - 1] == ' ' || text[n - 1] == ';' || text[n - 1] == '\n'))
        text[--n] = '\0';
    char *p = text;
    while (*p == ' ' || *p == '\n')
        p++;
    memmove(text, p, strlen(p) + 1);
    /* The longest command has seven words (START_REPLICATION SLOT s
     * PHYSICAL X/X TIMELINE n); an eighth is read so that words past a
     * valid command are seen and refused. */
    char w[8][64] = {{0}};
    int nw = sscanf(text, "%63s %63s %63s %63s %63s %63s %63s %63s", w[0], w[1], w[2], w[3], w[4],
                    w[5], w[6], w[7]);
    if (nw <= 0) {
        cmd->kind = SK_REPL_EMPTY;
    } else if (strcasecmp(w[0], "IDENTIFY_SYSTEM") == 0 && nw == 1) {
        cmd->kind = SK_REPL_IDENTIFY_SYSTEM;
    } else if (strcasecmp(w[0], "TIMELINE_HISTORY") == 0 && nw == 2) {
        char *end;
        unsigned long tli = strtoul(w[1], &end, 10);
        snprintf(cmd->arg, sizeof(cmd->arg), "%s", w[1]);
        if (*end || tli == 0 || tli > UINT32_MAX) {
            cmd->kind = SK_REPL_BAD_TIMELINE;
        } else {
            cmd->kind = SK_REPL_TIMELINE_HISTORY;
            cmd->tli = (uint32_t)tli;
        }
    } else if (strcasecmp(w[0], "SHOW") == 0 && nw == 2) {
        cmd->kind = SK_REPL_SHOW;
        snprintf(cmd->arg, sizeof(cmd->arg), "%s", w[1]);
    } else if (strcasecmp(w[0], "START_PEER_STREAM") == 0 && nw == 1) {
        cmd->kind = SK_REPL_START_PEER_STREAM;
    } else if (strcasecmp(w[0], "START_REPLICATION") == 0) {
        int i = 1;
        cmd->kind = SK_REPL_BAD_SYNTAX;
        if (i < nw && strcasecmp(w[i], "SLOT") == 0)
            i += 2; /* slots are not kept: retention follows offload, not slots */
        if (i < nw && strcasecmp(w[i], "PHYSICAL") == 0)
            i++;
        lb_lsn start;
        unsigned long tli = 0;
        if (i >= nw || lb_lsn_parse(w[i], &start) != 0)
            return;
        i++;
        if (i < nw) {
            char *end;
            if (strcasecmp(w[i], "TIMELINE") != 0 || i + 1 >= nw ||
                (tli = strtoul(w[i + 1], &end, 10)) == 0 || *end || tli > UINT32_MAX || i + 2 != nw)
                return;
        }
        cmd->kind = SK_REPL_START_REPLICATION;
        cmd->start = start;
        cmd->tli = (uint32_t)tli;
    } else {
        cmd->kind = SK_REPL_UNSUPPORTED;
    }
}

static void
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void
sk_peer_msg_encode(const sk_peer_msg *m, uint8_t out[SK_PEER_MSG_LEN])
{
    out[0] = 'p';
    memcpy(out + 1, m->tenant_id, SK_ID_LEN);
    memcpy(out + 1 + SK_ID_LEN, m->timeline_id, SK_ID_LEN);
    put_u64(out + 1 + 2 * SK_ID_LEN, m->term);
    put_u64(out + 9 + 2 * SK_ID_LEN, m->last_log_term);
    put_u64(out + 17 + 2 * SK_ID_LEN, m->flush_lsn);
}

int
sk_peer_msg_parse(const void *bytes, size_t n, sk_peer_msg *m)
{
    const uint8_t *p = bytes;
    memset(m, 0, sizeof(*m));
    if (n != SK_PEER_MSG_LEN || p[0] != 'p')
        return LB_EPARSE;
    memcpy(m->tenant_id, p + 1, SK_ID_LEN);
    memcpy(m->timeline_id, p + 1 + SK_ID_LEN, SK_ID_LEN);
    m->term = get_u64(p + 1 + 2 * SK_ID_LEN);
    m->last_log_term = get_u64(p + 9 + 2 * SK_ID_LEN);
    m->flush_lsn = get_u64(p + 17 + 2 * SK_ID_LEN);
    if (!sk_id_valid(m->tenant_id) || !sk_id_valid(m->timeline_id) || m->last_log_term > m->term) {
        memset(m, 0, sizeof(*m));
        return LB_EPARSE;
    }
    return 0;
}
