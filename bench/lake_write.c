/*
 * lake_write.c: the Parquet writer's side of the lake_write benchmark.
 *
 * It generates a deterministic table of mixed types, one row at a time,
 * and either writes it with lake's Parquet writer (ZSTD) or prints the
 * same rows as CSV so that DuckDB can load identical data. Row i depends
 * only on i (a splitmix64 stream seeded by the row number), so any row
 * count gives a prefix of the same table, and both modes agree value for
 * value.
 *
 *   lake_write write ROWS FILE   write FILE, print one line of key=value
 *   lake_write csv ROWS FILE     the same rows as CSV ("-" for stdout)
 *
 * The table (every column NOT NULL except discount):
 *
 *   id        int64          1, 2, 3, ...
 *   customer  int32          uniform in 0..99999
 *   price     double         uniform cents, 0.00..9999.99
 *   amount    decimal(18,2)  uniform in -10000000.00..9999999.99
 *   day       date           2020-01-01 onwards, 2500 rows a day
 *   ts        timestamp      4 rows a second from 2020-01-01, µs jitter
 *   status    string         one of 8 words
 *   comment   string         3..12 words from a vocabulary of 64
 *   discount  int32 nullable 0..49, null in 10% of rows
 *   flag      boolean        uniform
 *
 * Input bytes are the sum of the values' natural binary sizes: 8 for
 * int64, double, decimal(18,2) (an int64 unscaled) and timestamp; 4 for
 * int32 and date; 1 for boolean; the UTF-8 length of a string; 0 for a
 * null. bench/lake_write_duckdb.mjs computes the same sum over the table
 * DuckDB loaded, and the two must agree.
 *
 * In write mode the clocks (CLOCK_MONOTONIC, and the process's CPU time)
 * run only around the writer: opening it, lake_parquet_write_columns() on
 * each batch of 1024 rows (the values laid out column by column) and
 * closing it. Rows are generated in batches outside the clocks. Peak RSS
 * is the process's ru_maxrss after the file is closed, so it includes the
 * writer's row group buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "lake/parquet.h"
#include "lake/schema.h"
#include "lake/value.h"

#define NCOLUMNS 10
#define BATCH_ROWS 1024
#define COMMENT_MAX 128

/* 2020-01-01 as days and as µs since the epoch. */
#define DAY_2020 18262
#define US_2020 INT64_C(1577836800000000)

static const char *const statuses[8] = {
    "pending", "paid", "packed", "shipped", "delivered", "returned", "refunded", "cancelled",
};

/* No commas, quotes or spaces: CSV needs no quoting. */
static const char *const words[] = {
    "alpha",    "bravo",    "charlie", "delta",   "echo",     "foxtrot",  "golf",      "hotel",
    "india",    "juliet",   "kilo",    "lima",    "mike",     "november", "oscar",     "papa",
    "quebec",   "romeo",    "sierra",  "tango",   "uniform",  "victor",   "whiskey",   "xray",
    "yankee",   "zulu",     "order",   "invoice", "customer", "package",  "warehouse", "express",
    "standard", "priority", "fragile", "return",  "exchange", "gift",     "wrapped",   "north",
    "south",    "east",     "west",    "central", "urgent",   "delayed",  "on-time",   "early",
    "blue",     "green",    "red",     "yellow",  "large",    "small",    "medium",    "bulk",
    "retail",   "online",   "store",   "partner", "promo",    "coupon",   "loyalty",   "member",
};
_Static_assert(sizeof(words) / sizeof(words[0]) == 64, "a word is picked by 6 random bits");

typedef struct bench_row {
    int64_t id;
    int32_t customer;
    double price;
    int64_t amount_cents; /* unscaled decimal(18,2) */
    int32_t day;          /* days since 1970-01-01 */
    int64_t ts;           /* µs since 1970-01-01 */
    const char *status;
    char comment[COMMENT_MAX];
    size_t comment_len;
    bool has_discount;
    int32_t discount;
    bool flag;
} bench_row;

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Row i (0-based) of the table; returns its input bytes. */
static uint64_t
make_row(uint64_t i, bench_row *r)
{
    uint64_t state = i * UINT64_C(0x2545f4914f6cdd1d) + 1;
    uint64_t a = splitmix64(&state), b = splitmix64(&state), c = splitmix64(&state);
    r->id = (int64_t)i + 1;
    r->customer = (int32_t)(a % 100000);
    r->price = (double)((a >> 20) % 1000000) / 100.0;
    r->amount_cents = (int64_t)(b % INT64_C(2000000000)) - INT64_C(1000000000);
    r->day = DAY_2020 + (int32_t)(i / 2500);
    r->ts = US_2020 + (int64_t)i * 250000 + (int64_t)((b >> 40) % 250000);
    r->status = statuses[c & 7];
    r->has_discount = (c >> 3) % 10 != 0;
    r->discount = r->has_discount ? (int32_t)((c >> 8) % 50) : 0;
    r->flag = (c >> 16) & 1;
    int nwords = 3 + (int)((c >> 20) % 10);
    size_t len = 0;
    uint64_t pick = splitmix64(&state);
    for (int k = 0; k < nwords; k++) {
        if (k % 10 == 9)
            pick = splitmix64(&state);
        const char *word = words[pick & 63];
        pick >>= 6;
        size_t wlen = strlen(word);
        if (k)
            r->comment[len++] = ' ';
        memcpy(r->comment + len, word, wlen);
        len += wlen;
    }
    r->comment[len] = '\0';
    r->comment_len = len;
    return 8 + 4 + 8 + 8 + 4 + 8 + strlen(r->status) + r->comment_len + (r->has_discount ? 4 : 0) +
           1;
}

/* ---- CSV ------------------------------------------------------------------ */

/* Proleptic Gregorian date of a day number (days since 1970-01-01). */
static void
civil_from_days(int64_t z, int *year, int *month, int *mday)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = (int)m;
    *mday = (int)d;
}

static void
put_decimal2(FILE *out, int64_t cents)
{
    uint64_t u = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    fprintf(out, "%s%" PRIu64 ".%02u", cents < 0 ? "-" : "", u / 100, (unsigned)(u % 100));
}

static int
write_csv(uint64_t nrows, const char *path)
{
    FILE *out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!out) {
        fprintf(stderr, "lake_write: could not open \"%s\": %s\n", path, strerror(errno));
        return 1;
    }
    static char iobuf[1 << 20];
    setvbuf(out, iobuf, _IOFBF, sizeof(iobuf));
    bench_row r;
    uint64_t input_bytes = 0;
    for (uint64_t i = 0; i < nrows; i++) {
        input_bytes += make_row(i, &r);
        int y, mo, d, ty, tmo, td;
        civil_from_days(r.day, &y, &mo, &d);
        int64_t secs = r.ts / 1000000, us = r.ts % 1000000;
        int64_t tday = secs / 86400, tsec = secs % 86400;
        civil_from_days(tday, &ty, &tmo, &td);
        fprintf(out, "%" PRId64 ",%" PRId32 ",%.17g,", r.id, r.customer, r.price);
        put_decimal2(out, r.amount_cents);
        fprintf(out, ",%04d-%02d-%02d,%04d-%02d-%02d %02d:%02d:%02d.%06d,%s,%s,", y, mo, d, ty, tmo,
                td, (int)(tsec / 3600), (int)(tsec / 60 % 60), (int)(tsec % 60), (int)us, r.status,
                r.comment);
        if (r.has_discount)
            fprintf(out, "%" PRId32, r.discount);
        fprintf(out, ",%s\n", r.flag ? "true" : "false");
    }
    if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) {
        fprintf(stderr, "lake_write: could not write \"%s\": %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "rows=%" PRIu64 " input_bytes=%" PRIu64 "\n", nrows, input_bytes);
    return 0;
}

/* ---- Parquet ------------------------------------------------------------- */

static int
build_schema(lake_schema **out)
{
    static const lake_field fields[NCOLUMNS] = {
        {.name = "id", .field_id = 1, .type = LAKE_TYPE_INT64, .required = true},
        {.name = "customer", .field_id = 2, .type = LAKE_TYPE_INT32, .required = true},
        {.name = "price", .field_id = 3, .type = LAKE_TYPE_DOUBLE, .required = true},
        {.name = "amount",
         .field_id = 4,
         .type = LAKE_TYPE_DECIMAL,
         .required = true,
         .precision = 18,
         .scale = 2},
        {.name = "day", .field_id = 5, .type = LAKE_TYPE_DATE, .required = true},
        {.name = "ts", .field_id = 6, .type = LAKE_TYPE_TIMESTAMP, .required = true},
        {.name = "status", .field_id = 7, .type = LAKE_TYPE_STRING, .required = true},
        {.name = "comment", .field_id = 8, .type = LAKE_TYPE_STRING, .required = true},
        {.name = "discount", .field_id = 9, .type = LAKE_TYPE_INT32, .required = false},
        {.name = "flag", .field_id = 10, .type = LAKE_TYPE_BOOLEAN, .required = true},
    };
    lake_schema *s;
    int rc = lake_schema_new(&s);
    if (rc)
        return rc;
    for (int k = 0; k < NCOLUMNS; k++) {
        if ((rc = lake_schema_add(s, LAKE_SCHEMA_ROOT, &fields[k], NULL)) != 0) {
            fprintf(stderr, "lake_write: %s\n", lake_schema_error(s));
            lake_schema_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

/* Row k of a batch, as entry k of each column's values. */
static void
row_values(const bench_row *r, lake_value columns[NCOLUMNS][BATCH_ROWS], size_t k)
{
    columns[0][k] = lake_int(r->id);
    columns[1][k] = lake_int(r->customer);
    columns[2][k] = lake_double(r->price);
    columns[3][k] = lake_decimal(r->amount_cents);
    columns[4][k] = lake_int(r->day);
    columns[5][k] = lake_int(r->ts);
    columns[6][k] = lake_str(r->status);
    columns[7][k] = lake_bytes(r->comment, r->comment_len);
    columns[8][k] = r->has_discount ? lake_int(r->discount) : lake_null();
    columns[9][k] = lake_bool(r->flag);
}

static double
clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall and CPU time of the writer's calls, summed over the intervals
 * between start() and stop(). */
typedef struct stopwatch {
    double wall, cpu;
    double wall0, cpu0;
} stopwatch;

static void
stopwatch_start(stopwatch *sw)
{
    sw->wall0 = clock_seconds(CLOCK_MONOTONIC);
    sw->cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static void
stopwatch_stop(stopwatch *sw)
{
    sw->wall += clock_seconds(CLOCK_MONOTONIC) - sw->wall0;
    sw->cpu += clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - sw->cpu0;
}

static int
write_parquet(uint64_t nrows, const char *path)
{
    lake_schema *schema;
    if (build_schema(&schema))
        return 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "lake_write: could not open \"%s\": %s\n", path, strerror(errno));
        lake_schema_free(schema);
        return 1;
    }
    static bench_row rows[BATCH_ROWS];
    static lake_value values[NCOLUMNS][BATCH_ROWS];
    const lake_value *columns[NCOLUMNS];
    for (int k = 0; k < NCOLUMNS; k++)
        columns[k] = values[k];
    lake_parquet_options opts;
    lake_parquet_options_init(&opts);
    opts.codec = LAKE_CODEC_ZSTD;

    uint64_t input_bytes = 0;
    stopwatch sw = {0};
    stopwatch_start(&sw);
    lake_parquet_writer *w;
    lb_err err = {0};
    int rc = lake_parquet_writer_new_fd(schema, &opts, fd, &w, &err);
    stopwatch_stop(&sw);
    if (rc) {
        fprintf(stderr, "lake_write: %s\n", err.message);
        close(fd);
        lake_schema_free(schema);
        return 1;
    }
    for (uint64_t first = 0; first < nrows && rc == 0; first += BATCH_ROWS) {
        size_t n = nrows - first < BATCH_ROWS ? (size_t)(nrows - first) : BATCH_ROWS;
        for (size_t k = 0; k < n; k++) {
            input_bytes += make_row(first + k, &rows[k]);
            row_values(&rows[k], values, k);
        }
        stopwatch_start(&sw);
        rc = lake_parquet_write_columns(w, columns, NCOLUMNS, n);
        stopwatch_stop(&sw);
    }
    lake_parquet_file_stats *stats = NULL;
    if (rc == 0) {
        stopwatch_start(&sw);
        rc = lake_parquet_writer_close(w, &stats);
        stopwatch_stop(&sw);
    }
    if (rc) {
        fprintf(stderr, "lake_write: %s\n", lake_parquet_writer_error(w));
        lake_parquet_writer_free(w);
        close(fd);
        lake_schema_free(schema);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("rows=%" PRIu64 " input_bytes=%" PRIu64 " seconds=%.6f cpu_seconds=%.6f"
           " file_bytes=%" PRIu64 " row_groups=%" PRId64 " peak_rss_kb=%ld\n",
           nrows, input_bytes, sw.wall, sw.cpu, stats->file_bytes, stats->num_row_groups,
           ru.ru_maxrss);
    lake_parquet_file_stats_free(stats);
    lake_parquet_writer_free(w);
    lake_schema_free(schema);
    if (close(fd) != 0) {
        fprintf(stderr, "lake_write: could not close \"%s\": %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: lake_write write ROWS FILE\n"
                    "       lake_write csv ROWS FILE|-\n");
}

int
main(int argc, char **argv)
{
    if (argc != 4) {
        usage();
        return 2;
    }
    char *end;
    errno = 0;
    unsigned long long nrows = strtoull(argv[2], &end, 10);
    if (errno || *end || end == argv[2]) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "write") == 0)
        return write_parquet(nrows, argv[3]);
    if (strcmp(argv[1], "csv") == 0)
        return write_csv(nrows, argv[3]);
    usage();
    return 2;
}
