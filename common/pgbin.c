/*
 * pgbin.c: PostgreSQL's binary directory (pgbin.h). Not a configuration
 * concern: it asks the installed PostgreSQL, so it lives apart from the
 * generic settings loader.
 */
#include <stdio.h>
#include <string.h>

#include "pgbin.h"

void
lb_pg_bindir(char *out, size_t cap)
{
    FILE *f = popen("pg_config --bindir 2>/dev/null", "r");
    char buf[4096] = "";
    if (f) {
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = '\0';
        pclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    snprintf(out, cap, "%s", buf[0] ? buf : "/usr/lib/postgresql/15/bin");
}
