/*
 * config.h: a daemon's settings, declared once in a table.
 *
 * Each daemon declares its settings as an array of lb_config_setting ending
 * with LB_CONFIG_END: name, type, where the value lives in the daemon's
 * config struct (offsetof), default, description and limits. lb_config_load()
 * fills the struct from, in increasing precedence:
 *
 *   1. the defaults in the table;
 *   2. a YAML file (the yaml_path argument, or -c FILE / --config FILE);
 *   3. command-line options: --name=value or --name value.
 *
 * Dotted names are nested YAML keys: "storage.url" is written
 *
 *     storage:
 *       url: s3://bucket/prefix
 *
 * in the file (a literal "storage.url:" key is accepted too), and
 * --storage.url=... on the command line. Anything unknown, ill-typed,
 * out of range, given twice in the file, or of the wrong YAML shape is
 * refused with a message naming the setting and the file and line, or the
 * option, e.g.
 *
 *     config "/etc/sk.yaml" line 4: unknown setting "fsync_mod"
 *
 * Arguments that are not options (a subcommand, say) are handed back in
 * order; "--" ends the options. --help / -h sets result->help and loads
 * nothing: the caller prints lb_config_help() and exits.
 *
 * Value types and the C type each is stored as:
 *
 *   LB_CONFIG_STRING    char *          (owned; NULL when no default)
 *   LB_CONFIG_INT       int64_t         min/max apply when min < max
 *   LB_CONFIG_BOOL      bool            true/false, yes/no, on/off, 1/0;
 *                                       on the command line "--name" alone is true
 *   LB_CONFIG_SIZE      uint64_t bytes  "64MiB", "512kB", "1GiB", "4096";
 *                                       KiB/MiB/GiB/TiB are powers of 1024,
 *                                       kB/MB/GB/TB powers of 1000; min/max
 *   LB_CONFIG_DURATION  int64_t ms      "500ms", "10s", "5m", "1h30m", "2d"; min/max
 *   LB_CONFIG_ENUM      int             index into choices (NULL-terminated)
 *   LB_CONFIG_LSN       lb_lsn          "0/16B3F10"
 *   LB_CONFIG_LIST      lb_config_list  YAML sequence of scalars; on the
 *                                       command line and in defaults, comma-separated
 *   LB_CONFIG_ADDR      lb_config_addr  "host:port" or "[v6]:port", port 0-65535
 *
 * Callers: every daemon's main().
 */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "hostport.h"

typedef enum lb_config_type {
    LB_CONFIG_STRING,
    LB_CONFIG_INT,
    LB_CONFIG_BOOL,
    LB_CONFIG_SIZE,
    LB_CONFIG_DURATION,
    LB_CONFIG_ENUM,
    LB_CONFIG_LSN,
    LB_CONFIG_LIST,
    LB_CONFIG_ADDR,
} lb_config_type;

/* A list of strings; items and each string are owned by the config. */
typedef struct lb_config_list {
    char **items;
    size_t count;
} lb_config_list;

/* host without brackets; port 0 means "any free port". */
typedef lb_hostport lb_config_addr; /* parsed by lb_hostport_parse() */

/* flags */
#define LB_CONFIG_REQUIRED 1u /* no default: must be set in the file or on the command line */

typedef struct lb_config_setting {
    const char *name; /* "port", "storage.url": [a-z0-9_] words joined by dots */
    lb_config_type type;
    size_t offset;              /* offsetof(daemon_config, field) */
    const char *def;            /* default in the text form a file would use; NULL: none */
    const char *description;    /* one line, for --help */
    int64_t min, max;           /* INT, SIZE, DURATION (ms): checked when min < max */
    const char *const *choices; /* ENUM: allowed values, NULL-terminated */
    unsigned flags;
} lb_config_setting;

#define LB_CONFIG_END                                                                              \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/* Table entries, e.g.
 *     LB_SETTING("storage.url", LB_CONFIG_STRING, sk_config, storage_url, NULL, "where WAL goes"),
 *     LB_SETTING_RANGE("workers", LB_CONFIG_INT, sk_config, workers, "4", "threads", 1, 64),
 *     LB_SETTING_ENUM("sync_mode", sk_config, sync_mode, "on", "how to sync", sync_modes),
 *     LB_SETTING_REQUIRED("tenant_id", LB_CONFIG_STRING, sk_config, tenant_id, "tenant"), */
#define LB_SETTING(name_, type_, struct_, member_, def_, desc_)                                    \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = offsetof(struct_, member_), .def = (def_),     \
        .description = (desc_)                                                                     \
    }
#define LB_SETTING_RANGE(name_, type_, struct_, member_, def_, desc_, min_, max_)                  \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = offsetof(struct_, member_), .def = (def_),     \
        .description = (desc_), .min = (min_), .max = (max_)                                       \
    }
#define LB_SETTING_ENUM(name_, struct_, member_, def_, desc_, choices_)                            \
    {                                                                                              \
        .name = (name_), .type = LB_CONFIG_ENUM, .offset = offsetof(struct_, member_),             \
        .def = (def_), .description = (desc_), .choices = (choices_)                               \
    }
#define LB_SETTING_REQUIRED(name_, type_, struct_, member_, desc_)                                 \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = offsetof(struct_, member_),                    \
        .description = (desc_), .flags = LB_CONFIG_REQUIRED                                        \
    }

typedef struct lb_config_result {
    char error[512];         /* why loading failed; "" on success */
    bool help;               /* --help or -h was given: nothing was loaded */
    char *const *positional; /* arguments that are not options, in order */
    int npositional;         /* (pointers into argv; the array is freed by lb_config_result_free) */
    const char *file;        /* the YAML file loaded, or NULL (points into argv or yaml_path) */
} lb_config_result;

/* ---- daemons' main() ---- */

/* Apply defaults, then the YAML file (-c/--config on the command line
 * replaces yaml_path; NULL and no -c: no file), then the command line
 * (argv[0] is the program and is skipped). 0; LB_EBADCONFIG with
 * result->error set for anything refused; -errno if the file cannot be
 * read (error set too). On failure conf may be partly filled: call
 * lb_config_free() in every case, and lb_config_result_free(result). */
int lb_config_load(const lb_config_setting *table, void *conf, const char *yaml_path, int argc,
                   char *const argv[], lb_config_result *result);
/* Free the strings and lists that loading stored in conf. */
void lb_config_free(const lb_config_setting *table, void *conf);
void lb_config_result_free(lb_config_result *result);

/* Usage text generated from the table, appended to out: usage line, the
 * -c and --help options, then each setting with its value form, description,
 * default, limits and choices. 0 or -ENOMEM. */
int lb_config_help(const lb_config_setting *table, const char *program, const char *usage,
                   lb_buf *out);

/* ---- parsing single values (also for tests and other callers) ---- */

/* The one boolean vocabulary: true/false, yes/no, on/off, 1/0, in any
 * case. 0 or LB_EPARSE. */
int lb_bool_parse(const char *text, bool *out);
/* "64MiB" -> bytes. 0 or LB_EPARSE (also on overflow). */
int lb_config_parse_size(const char *text, uint64_t *bytes);

/* ---- YAML as data (compute-ctl's spec) ---- */

/* The reader lb_config_load() uses, for YAML that is not a settings file:
 * one document, nested at most 32 deep, no aliases; mappings become
 * objects (a key given twice is refused), sequences arrays, plain scalars
 * null, integers, reals or booleans (lb_bool_parse()'s words but 1 and 0)
 * where they read as such, everything else strings. An empty document is
 * JSON null. *out: a new reference. 0, LB_EPARSE with err "line N: why",
 * or -ENOMEM. */
int lb_yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t cap);

#endif
