/*
 * fuzz_pgwire.c: libFuzzer target for every protocol parser a network peer
 * can reach: typed messages, startup packets, replication CopyData payloads
 * and error responses. The property: no crash, no out-of-bounds access, and
 * consumed never exceeds the input.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pgwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lb_pq_msg m;
    lb_pq_startup st;
    lb_pq_repl r;
    lb_pq_error e;
    size_t used;

    /* A stream of typed messages, as a server reads them. */
    size_t off = 0;
    while (off < size && lb_pq_parse_msg(data + off, size - off, 1 << 20, &m, &used) == 0) {
        if (used > size - off)
            abort();
        if (m.type == 'd')
            lb_pq_parse_repl(m.body, m.len, &r);
        if (m.type == 'E' || m.type == 'N')
            lb_pq_parse_error(&m, &e);
        off += used;
    }
    if (lb_pq_parse_startup(data, size, &st, &used) == 0 && used > size)
        abort();
    lb_pq_parse_repl(data, size, &r);
    return 0;
}
