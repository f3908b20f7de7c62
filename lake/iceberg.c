/*
 * iceberg.c: Iceberg v2 table metadata, manifest lists and manifests
 * (Iceberg table spec: "Manifests", "Manifest Lists", "Snapshots",
 * "Table Metadata", Appendix C and D).
 *
 * State. A handle holds the parsed current metadata JSON, the manifest
 * list entries of the current snapshot (manifest_file records, kept as
 * plain structs), and the live files: relative path, the manifest that
 * lists it, its row count and size. Opening a table rebuilds this from
 * object storage: newest vN.metadata.json, then the manifest list, then
 * every manifest (status DELETED entries are not live; ADDED entries
 * inherit the manifest's sequence number when theirs is null).
 *
 * Commit. After validation, in this order: (1) rewritten manifests for the
 * parent's manifests that lose files; (2) a manifest of ADDED files; (3)
 * the manifest list; (4) v<N+1>.metadata.json, put-if-absent: the commit
 * point; (5) version-hint.text. A failure before (4) leaves only
 * unreferenced files; a conflict at (4) means another writer won. Only
 * after (4) does the handle move to the new state.
 *
 * Entry rules (spec "Sequence Number Inheritance"): ADDED entries carry
 * the new snapshot id and null sequence numbers (inherited from the
 * manifest list, which records the new sequence number); EXISTING and
 * DELETED entries carry the snapshot id and both sequence numbers
 * explicitly, resolved from the manifest they came from. A DELETED entry's
 * snapshot id is the deleting snapshot's. DELETED entries of older
 * snapshots are dropped when their manifest is rewritten, and a kept
 * manifest without live files is dropped from the next snapshot.
 *
 * Schemas. The caller's schema, compared by field id with the table's
 * current one at open, is either that schema (its id is reused) or a
 * valid evolution of it (check_evolution(): spec "Schema Evolution"),
 * which the next commit appends to "schemas" with the next schema id and
 * makes current, raising last-column-id. Snapshots and manifest headers
 * record the schema id they were written with; files of older schemas
 * stay listed (readers project by field id). A commit with no files and
 * a pending schema is a metadata version without a snapshot.
 *
 * Manifest and manifest list Avro schemas are the spec's, with the field
 * ids and the field and record names Spark's Iceberg writer uses (so
 * readers that match by name agree too), v2's optional
 * referenced_data_file (143) included.
 *
 * Callers: the transcoder (one snapshot per lake snapshot), the REST
 * catalog (loadTable reads the location of the newest metadata), tests.
 */
#include "iceberg.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro.h"
#include "buf.h"
#include "encoding.h"
#include "errors.h"

enum { ST_EXISTING = 0, ST_ADDED = 1, ST_DELETED = 2 };

#define MAP_FIELD(name, id, key, val, vtype)                                                       \
    "{\"name\":\"" name "\",\"type\":[\"null\",{\"type\":\"array\",\"items\":{\"type\":"           \
    "\"record\",\"name\":\"k" key "_v" val "\",\"fields\":[{\"name\":\"key\",\"type\":\"int\","    \
    "\"field-id\":" key "},{\"name\":\"value\",\"type\":\"" vtype "\",\"field-id\":" val "}]},"    \
    "\"logicalType\":\"map\"}],\"default\":null,\"field-id\":" id "}"

static const char MANIFEST_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"manifest_entry\",\"fields\":["
    "{\"name\":\"status\",\"type\":\"int\",\"field-id\":0},"
    "{\"name\":\"snapshot_id\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":1},"
    "{\"name\":\"sequence_number\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":3},"
    "{\"name\":\"file_sequence_number\",\"type\":[\"null\",\"long\"],\"default\":null,"
    "\"field-id\":4},"
    "{\"name\":\"data_file\",\"type\":{\"type\":\"record\",\"name\":\"r2\",\"fields\":["
    "{\"name\":\"content\",\"type\":\"int\",\"field-id\":134},"
    "{\"name\":\"file_path\",\"type\":\"string\",\"field-id\":100},"
    "{\"name\":\"file_format\",\"type\":\"string\",\"field-id\":101},"
    "{\"name\":\"partition\",\"type\":{\"type\":\"record\",\"name\":\"r102\",\"fields\":[]},"
    "\"field-id\":102},"
    "{\"name\":\"record_count\",\"type\":\"long\",\"field-id\":103},"
    "{\"name\":\"file_size_in_bytes\",\"type\":\"long\",\"field-id\":104}," //
    MAP_FIELD("column_sizes", "108", "117", "118", "long") ","              //
    MAP_FIELD("value_counts", "109", "119", "120", "long") ","              //
    MAP_FIELD("null_value_counts", "110", "121", "122", "long") ","         //
    MAP_FIELD("nan_value_counts", "137", "138", "139", "long") ","          //
    MAP_FIELD("lower_bounds", "125", "126", "127", "bytes") ","             //
    MAP_FIELD("upper_bounds", "128", "129", "130",
              "bytes") "," //
                       "{\"name\":\"key_metadata\",\"type\":[\"null\",\"bytes\"],\"default\":null,"
                       "\"field-id\":131},"
                       "{\"name\":\"split_offsets\",\"type\":[\"null\",{\"type\":\"array\","
                       "\"items\":\"long\","
                       "\"element-id\":133}],\"default\":null,\"field-id\":132},"
                       "{\"name\":\"equality_ids\",\"type\":[\"null\",{\"type\":\"array\","
                       "\"items\":\"int\","
                       "\"element-id\":136}],\"default\":null,\"field-id\":135},"
                       "{\"name\":\"sort_order_id\",\"type\":[\"null\",\"int\"],\"default\":null,"
                       "\"field-id\":140},"
                       "{\"name\":\"referenced_data_file\",\"type\":[\"null\",\"string\"],"
                       "\"default\":null,"
                       "\"field-id\":143}"
                       "]},\"field-id\":2}]}";

/* data_file field positions in MANIFEST_SCHEMA */
enum {
    DF_CONTENT,
    DF_PATH,
    DF_FORMAT,
    DF_PARTITION,
    DF_RECORDS,
    DF_SIZE,
    DF_COLUMN_SIZES,
    DF_VALUE_COUNTS,
    DF_NULL_COUNTS,
    DF_NAN_COUNTS,
    DF_LOWER,
    DF_UPPER,
    DF_KEY_METADATA,
    DF_SPLITS,
    DF_EQUALITY_IDS,
    DF_SORT_ORDER,
    DF_REFERENCED,
    DF_NFIELDS
};

static const char MANIFEST_LIST_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"manifest_file\",\"fields\":["
    "{\"name\":\"manifest_path\",\"type\":\"string\",\"field-id\":500},"
    "{\"name\":\"manifest_length\",\"type\":\"long\",\"field-id\":501},"
    "{\"name\":\"partition_spec_id\",\"type\":\"int\",\"field-id\":502},"
    "{\"name\":\"content\",\"type\":\"int\",\"field-id\":517},"
    "{\"name\":\"sequence_number\",\"type\":\"long\",\"field-id\":515},"
    "{\"name\":\"min_sequence_number\",\"type\":\"long\",\"field-id\":516},"
    "{\"name\":\"added_snapshot_id\",\"type\":\"long\",\"field-id\":503},"
    "{\"name\":\"added_data_files_count\",\"type\":\"int\",\"field-id\":504},"
    "{\"name\":\"existing_data_files_count\",\"type\":\"int\",\"field-id\":505},"
    "{\"name\":\"deleted_data_files_count\",\"type\":\"int\",\"field-id\":506},"
    "{\"name\":\"added_rows_count\",\"type\":\"long\",\"field-id\":512},"
    "{\"name\":\"existing_rows_count\",\"type\":\"long\",\"field-id\":513},"
    "{\"name\":\"deleted_rows_count\",\"type\":\"long\",\"field-id\":514},"
    "{\"name\":\"partitions\",\"type\":[\"null\",{\"type\":\"array\",\"items\":{\"type\":"
    "\"record\",\"name\":\"r508\",\"fields\":["
    "{\"name\":\"contains_null\",\"type\":\"boolean\",\"field-id\":509},"
    "{\"name\":\"contains_nan\",\"type\":[\"null\",\"boolean\"],\"default\":null,"
    "\"field-id\":518},"
    "{\"name\":\"lower_bound\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":510},"
    "{\"name\":\"upper_bound\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":511}"
    "]},\"element-id\":508}],\"default\":null,\"field-id\":507},"
    "{\"name\":\"key_metadata\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":519}"
    "]}";

enum { MF_NFIELDS = 15 };

/* One manifest_file of the current snapshot. */
typedef struct manifest {
    char *path; /* absolute, as in the list */
    int64_t length, seq, min_seq, added_snapshot;
    int32_t added, existing, deleted;
    int64_t added_rows, existing_rows, deleted_rows;
} manifest;

/* One live data file. */
typedef struct live_file {
    char *path; /* relative to the table prefix */
    size_t manifest;
    int64_t records, bytes;
} live_file;

struct lake_iceberg_table {
    lake__table_core core; /* store, prefix, schema, leaves; live paths (= live[].path) */
    char *location;        /* absolute URI of the table */
    char *schema_json;     /* Iceberg JSON of the caller's schema, with schema_id */
    int32_t schema_id;     /* the caller's schema's id in the table */
    int32_t max_id;        /* the largest field id of the caller's schema */
    bool evolve;           /* the table's current schema is another: the next commit adds ours */
    bool retyped;          /* ... and a field kept its id with a promoted type */
    int32_t *old_ids;      /* field ids of the table's current schema at open, sorted */
    size_t nold_ids;
    json_t *meta;    /* current metadata */
    int64_t version; /* N of vN.metadata.json */
    lake_avro_schema *manifest_schema, *list_schema;
    manifest *manifests;
    size_t nmanifests;
    live_file *live; /* sorted by path */
    size_t nlive;
    lb_err *err; /* the current call's, never NULL during a call */
};

/* Set the current call's error. */
#define terr(t, ...) lb_err_set((t)->err, __VA_ARGS__)

/* ---- schema ------------------------------------------------------------ */

static json_t *
ice_primitive(const lake__node *n, void *arg)
{
    (void)arg;
    char buf[64];
    switch (n->type) {
    case LAKE_TYPE_BOOLEAN:
        return json_string("boolean");
    case LAKE_TYPE_INT8:
    case LAKE_TYPE_INT16:
    case LAKE_TYPE_INT32:
        return json_string("int");
    case LAKE_TYPE_INT64:
        return json_string("long");
    case LAKE_TYPE_FLOAT:
        return json_string("float");
    case LAKE_TYPE_DOUBLE:
        return json_string("double");
    case LAKE_TYPE_DECIMAL:
        snprintf(buf, sizeof(buf), "decimal(%d, %d)", n->precision, n->scale);
        return json_string(buf);
    case LAKE_TYPE_DATE:
        return json_string("date");
    case LAKE_TYPE_TIME:
        return json_string("time");
    case LAKE_TYPE_TIMESTAMP:
        return json_string("timestamp");
    case LAKE_TYPE_TIMESTAMPTZ:
        return json_string("timestamptz");
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
        return json_string("string");
    case LAKE_TYPE_UUID:
        return json_string("uuid");
    case LAKE_TYPE_BINARY:
        return json_string("binary");
    case LAKE_TYPE_FIXED:
        snprintf(buf, sizeof(buf), "fixed[%d]", n->length);
        return json_string(buf);
    default:
        return NULL;
    }
}

static json_t *
ice_list(const lake__node *list, const lake__node *el, json_t *et, void *arg)
{
    (void)list, (void)arg;
    return json_pack("{s:s, s:i, s:o, s:b}", "type", "list", "element-id", (int)el->field_id,
                     "element", et, "element-required", el->required);
}

static json_t *
ice_field(const lake__node *f, json_t *type, void *arg)
{
    (void)arg;
    return json_pack("{s:i, s:s, s:b, s:o}", "id", (int)f->field_id, "name", f->name, "required",
                     f->required, "type", type);
}

static const lake__schema_dialect ice_dialect = {
    .ids_required = true,
    .primitive = ice_primitive,
    .list = ice_list,
    .field = ice_field,
};

static json_t *
schema_object(const lake_schema *s, int32_t *max_id, lb_err *err)
{
    json_t *j = lake__schema_json(s, &ice_dialect, NULL, max_id, err);
    if (j)
        json_object_set_new(j, "schema-id", json_integer(0));
    else
        lb_err_prefix(err, "schema has no Iceberg form");
    return j;
}

char *
lake_iceberg_schema_json(const lake_schema *schema, lb_err *err)
{
    int32_t max_id;
    json_t *j = schema_object(schema, &max_id, err);
    if (!j)
        return NULL;
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

/* ---- keys and locations ------------------------------------------------------ */

static char *
key_of(const lake_iceberg_table *t, const char *rel)
{
    char *k = NULL;
    if (asprintf(&k, "%s/%s", t->core.prefix, rel) < 0)
        return NULL;
    return k;
}

static char *
uri_of(const lake_iceberg_table *t, const char *rel)
{
    char *u = NULL;
    if (asprintf(&u, "%s/%s", t->location, rel) < 0)
        return NULL;
    return u;
}

/* Relative path of an absolute location inside the table, or NULL. */
static const char *
rel_of(const lake_iceberg_table *t, const char *uri)
{
    size_t n = strlen(t->location);
    if (strncmp(uri, t->location, n) != 0 || uri[n] != '/')
        return NULL;
    return uri + n + 1;
}

/* The location of a data file: inside the table, or for a shared file
 * ('/' and a key, table.h) the store's URL and the key. */
static char *
data_uri_of(const lake_iceberg_table *t, const char *path)
{
    char *u = NULL;
    if (path[0] != '/')
        return uri_of(t, path);
    if (asprintf(&u, "%s%s", lake_store_url(t->core.store), path) < 0)
        return NULL;
    return u;
}

/* The path of a data file's location (the inverse of data_uri_of), or NULL
 * for a location outside the store. */
static const char *
data_rel_of(const lake_iceberg_table *t, const char *uri)
{
    const char *rel = rel_of(t, uri);
    if (rel)
        return rel;
    const char *url = lake_store_url(t->core.store);
    size_t n = strlen(url);
    if (strncmp(uri, url, n) != 0 || uri[n] != '/' || !uri[n + 1])
        return NULL;
    return uri + n;
}

/* ---- live files ----------------------------------------------------------- */

static int
cmp_live(const void *a, const void *b)
{
    return strcmp(((const live_file *)a)->path, ((const live_file *)b)->path);
}

static void
free_state(manifest *m, size_t nm, live_file *l, size_t nl)
{
    for (size_t i = 0; i < nm; i++)
        free(m[i].path);
    free(m);
    for (size_t i = 0; i < nl; i++)
        free(l[i].path);
    free(l);
}

/* The core's live set mirrors live[] (both sorted by path). */
static int
sync_core(lake_iceberg_table *t)
{
    for (size_t i = 0; i < t->core.nlive; i++)
        free(t->core.live[i]);
    t->core.nlive = 0;
    for (size_t i = 0; i < t->nlive; i++) {
        int rc = lake__live_append(&t->core, t->live[i].path);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- reading manifests ------------------------------------------------------- */

static const lake_avro_value *
fld(const lake_avro_value *rec, int i)
{
    return lake_avro_unwrap(&rec->u.list.items[i]);
}

static char *
dup_str(const lake_avro_value *v)
{
    return strndup(v->u.bytes.ptr, v->u.bytes.len);
}

static int
get_object(lake_iceberg_table *t, const char *uri, lb_buf *out)
{
    const char *rel = rel_of(t, uri);
    if (!rel)
        return terr(t, LB_EPARSE, "\"%s\" is outside the table location \"%s\"", uri, t->location);
    char *key = key_of(t, rel);
    if (!key)
        return -ENOMEM;
    int rc = lake_store_get(t->core.store, key, out);
    if (rc)
        terr(t, rc, "%s", lake_store_error(t->core.store));
    free(key);
    return rc;
}

/* Open an Avro file we wrote; its schema must be the one we write. */
static int
open_avro(lake_iceberg_table *t, const lb_buf *bytes, const lake_avro_schema *want,
          const char *what, lake_avro_reader **r)
{
    int rc = lake_avro_reader_open(bytes->data, bytes->len, r, t->err);
    if (rc)
        return lb_err_prefix(t->err, "%s", what);
    if (strcmp(lake_avro_schema_json(lake_avro_reader_schema(*r)), lake_avro_schema_json(want))) {
        lake_avro_reader_free(*r);
        *r = NULL;
        return terr(t, LB_EPARSE, "%s has a schema this writer does not write", what);
    }
    return 0;
}

static int
load_manifest_list(lake_iceberg_table *t, const char *uri, manifest **out, size_t *nout)
{
    lb_buf bytes = LB_BUF_INIT;
    lake_avro_reader *r = NULL;
    int rc = get_object(t, uri, &bytes);
    if (rc == 0)
        rc = open_avro(t, &bytes, t->list_schema, "manifest list", &r);
    manifest *ms = NULL;
    size_t n = 0;
    const lake_avro_value *v;
    while (rc == 0 && (rc = lake_avro_reader_next(r, &v)) == 1) {
        rc = 0;
        if (fld(v, 3)->u.i != 0) {
            rc = terr(t, LB_EUNSUPPORTED, "delete manifests are not supported");
            break;
        }
        manifest *grown = realloc(ms, (n + 1) * sizeof(*ms));
        if (!grown) {
            rc = -ENOMEM;
            break;
        }
        ms = grown;
        manifest *m = &ms[n];
        memset(m, 0, sizeof(*m));
        if (!(m->path = dup_str(fld(v, 0)))) {
            rc = -ENOMEM;
            break;
        }
        n++;
        m->length = fld(v, 1)->u.l;
        m->seq = fld(v, 4)->u.l;
        m->min_seq = fld(v, 5)->u.l;
        m->added_snapshot = fld(v, 6)->u.l;
        m->added = fld(v, 7)->u.i;
        m->existing = fld(v, 8)->u.i;
        m->deleted = fld(v, 9)->u.i;
        m->added_rows = fld(v, 10)->u.l;
        m->existing_rows = fld(v, 11)->u.l;
        m->deleted_rows = fld(v, 12)->u.l;
    }
    if (rc < 0 && r && !t->err->message[0])
        terr(t, rc, "manifest list: %s", lake_avro_reader_error(r));
    lake_avro_reader_free(r);
    lb_buf_free(&bytes);
    if (rc) {
        free_state(ms, n, NULL, 0);
        return rc;
    }
    *out = ms;
    *nout = n;
    return 0;
}

/* Adds the live files of manifest mi to *live. */
static int
load_manifest(lake_iceberg_table *t, const manifest *m, size_t mi, live_file **live, size_t *nlive,
              size_t *cap)
{
    lb_buf bytes = LB_BUF_INIT;
    lake_avro_reader *r = NULL;
    int rc = get_object(t, m->path, &bytes);
    if (rc == 0)
        rc = open_avro(t, &bytes, t->manifest_schema, "manifest", &r);
    const lake_avro_value *v;
    while (rc == 0 && (rc = lake_avro_reader_next(r, &v)) == 1) {
        rc = 0;
        if (fld(v, 0)->u.i == ST_DELETED)
            continue;
        const lake_avro_value *df = fld(v, 4);
        if (fld(df, DF_CONTENT)->u.i != 0) {
            rc = terr(t, LB_EUNSUPPORTED, "delete files are not supported");
            break;
        }
        char *uri = dup_str(fld(df, DF_PATH));
        const char *rel = uri ? data_rel_of(t, uri) : NULL;
        if (!uri || !rel) {
            rc = uri ? terr(t, LB_EPARSE, "data file \"%s\" is outside the table", uri) : -ENOMEM;
            free(uri);
            break;
        }
        if (*nlive == *cap) {
            size_t c = *cap ? 2 * *cap : 64;
            live_file *grown = realloc(*live, c * sizeof(live_file));
            if (!grown) {
                free(uri);
                rc = -ENOMEM;
                break;
            }
            *live = grown;
            *cap = c;
        }
        live_file *l = &(*live)[(*nlive)];
        l->path = strdup(rel);
        free(uri);
        if (!l->path) {
            rc = -ENOMEM;
            break;
        }
        (*nlive)++;
        l->manifest = mi;
        l->records = fld(df, DF_RECORDS)->u.l;
        l->bytes = fld(df, DF_SIZE)->u.l;
    }
    if (rc < 0 && r && !t->err->message[0])
        terr(t, rc, "manifest \"%s\": %s", m->path, lake_avro_reader_error(r));
    lake_avro_reader_free(r);
    lb_buf_free(&bytes);
    return rc;
}

static json_t *
current_snapshot(json_t *meta)
{
    json_int_t id = json_integer_value(json_object_get(meta, "current-snapshot-id"));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(meta, "snapshots"), i, s)
    {
        if (json_integer_value(json_object_get(s, "snapshot-id")) == id)
            return s;
    }
    return NULL;
}

static int
load_snapshot(lake_iceberg_table *t)
{
    json_t *snap = current_snapshot(t->meta);
    json_int_t id = json_integer_value(json_object_get(t->meta, "current-snapshot-id"));
    if (!snap) {
        if (json_is_integer(json_object_get(t->meta, "current-snapshot-id")) && id != -1)
            return terr(t, LB_EPARSE, "current snapshot %lld is not in the metadata",
                        (long long)id);
        return 0;
    }
    const char *list = json_string_value(json_object_get(snap, "manifest-list"));
    if (!list)
        return terr(t, LB_EPARSE, "snapshot %lld has no manifest-list", (long long)id);
    manifest *ms = NULL;
    size_t nm = 0;
    int rc = load_manifest_list(t, list, &ms, &nm);
    if (rc)
        return rc;
    live_file *live = NULL;
    size_t nlive = 0, cap = 0;
    for (size_t i = 0; i < nm && rc == 0; i++)
        rc = load_manifest(t, &ms[i], i, &live, &nlive, &cap);
    if (rc) {
        free_state(ms, nm, live, nlive);
        return rc;
    }
    if (nlive)
        qsort(live, nlive, sizeof(live_file), cmp_live);
    for (size_t i = 1; i < nlive; i++)
        if (strcmp(live[i - 1].path, live[i].path) == 0) {
            rc = terr(t, LB_EPARSE, "data file \"%s\" is live twice", live[i].path);
            free_state(ms, nm, live, nlive);
            return rc;
        }
    t->manifests = ms;
    t->nmanifests = nm;
    t->live = live;
    t->nlive = nlive;
    return sync_core(t);
}

/* ---- open --------------------------------------------------------------------- */

static char *
metadata_key(const lake_iceberg_table *t, int64_t version)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "metadata/v%" PRId64 ".metadata.json", version);
    return key_of(t, rel);
}

static int
put_hint(lake_iceberg_table *t, int64_t version)
{
    char *key = key_of(t, "metadata/version-hint.text");
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRId64, version);
    int rc = key ? lake_store_put(t->core.store, key, text, (size_t)n) : -ENOMEM;
    free(key);
    return rc;
}

/* Write metadata version `version`; LB_ECONFLICT if it exists. */
static int
put_metadata(lake_iceberg_table *t, json_t *meta, int64_t version)
{
    char *text = json_dumps(meta, JSON_INDENT(2));
    char *key = metadata_key(t, version);
    int rc = text && key ? lake_store_put_new(t->core.store, key, text, strlen(text)) : -ENOMEM;
    if (rc == LB_ECONFLICT)
        terr(t, rc,
             "metadata version %lld was written by another writer; reopen the table and "
             "retry",
             (long long)version);
    else if (rc && rc != -ENOMEM)
        terr(t, rc, "%s", lake_store_error(t->core.store));
    free(text);
    free(key);
    return rc;
}

static int
create_table(lake_iceberg_table *t, const lake_iceberg_options *opts, json_t *schema,
             int32_t max_id)
{
    char uuid[37];
    lake__uuid4(uuid);
    json_t *props = json_object();
    if (opts && opts->properties)
        for (const char *const *kv = opts->properties; kv[0] && kv[1]; kv += 2)
            json_object_set_new(props, kv[0], json_string(kv[1]));
    json_t *meta = json_pack(
        "{s:i, s:s, s:s, s:i, s:I, s:i, s:i, s:[O], s:i, s:[{s:i, s:[]}], s:i, s:i, "
        "s:[{s:i, s:[]}], s:o, s:i, s:{}, s:[], s:[], s:[], s:[], s:[]}",
        "format-version", 2, "table-uuid", uuid, "location", t->location, "last-sequence-number", 0,
        "last-updated-ms", (json_int_t)lake__now_ms(), "last-column-id", (int)max_id,
        "current-schema-id", 0, "schemas", schema, "default-spec-id", 0, "partition-specs",
        "spec-id", 0, "fields", "last-partition-id", 999, "default-sort-order-id", 0, "sort-orders",
        "order-id", 0, "fields", "properties", props, "current-snapshot-id", -1, "refs",
        "snapshots", "statistics", "partition-statistics", "snapshot-log", "metadata-log");
    if (!meta)
        return -ENOMEM;
    int rc = put_metadata(t, meta, 1);
    if (rc == LB_ECONFLICT)
        terr(t, rc, "another writer created the table first; open it again");
    if (rc == 0) {
        put_hint(t, 1); /* a hint: readers that miss it list the metadata */
        t->meta = meta;
        t->version = 1;
    } else {
        json_decref(meta);
    }
    return rc;
}

/* ---- schema evolution (spec "Schema Evolution") --------------------------- */

/* One field (or list element) of a schema JSON: its id, its parent's id (0:
 * top level), its type (a primitive's name, or "struct" / "list") and
 * whether it is required. Borrowed from the JSON. */
typedef struct field_sig {
    int32_t id, parent;
    const char *type;
    bool required;
} field_sig;

typedef struct sigs {
    field_sig *v;
    size_t n, cap;
} sigs;

static int
sig_add(sigs *s, int32_t id, int32_t parent, const json_t *type, bool required)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        field_sig *g = realloc(s->v, cap * sizeof(*g));
        if (!g)
            return -ENOMEM;
        s->v = g;
        s->cap = cap;
    }
    const char *t = json_is_string(type) ? json_string_value(type)
                                         : json_string_value(json_object_get(type, "type"));
    s->v[s->n++] =
        (field_sig){.id = id, .parent = parent, .type = t ? t : "?", .required = required};
    return 0;
}

/* Collect the fields under a struct or list type. LB_EPARSE for a shape
 * that is not a schema. */
static int
sig_walk(sigs *s, const json_t *type, int32_t parent)
{
    if (json_is_string(type))
        return 0;
    const char *kind = json_string_value(json_object_get(type, "type"));
    if (kind && strcmp(kind, "struct") == 0) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(type, "fields"), i, f)
        {
            json_t *id = json_object_get(f, "id"), *ft = json_object_get(f, "type");
            if (!json_is_integer(id) || !ft)
                return LB_EPARSE;
            int rc = sig_add(s, (int32_t)json_integer_value(id), parent, ft,
                             json_is_true(json_object_get(f, "required")));
            if (rc == 0)
                rc = sig_walk(s, ft, (int32_t)json_integer_value(id));
            if (rc)
                return rc;
        }
        return 0;
    }
    if (kind && strcmp(kind, "list") == 0) {
        json_t *id = json_object_get(type, "element-id"), *et = json_object_get(type, "element");
        if (!json_is_integer(id) || !et)
            return LB_EPARSE;
        int rc = sig_add(s, (int32_t)json_integer_value(id), parent, et,
                         json_is_true(json_object_get(type, "element-required")));
        return rc ? rc : sig_walk(s, et, (int32_t)json_integer_value(id));
    }
    return LB_EPARSE;
}

static const field_sig *
sig_find(const sigs *s, int32_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].id == id)
            return &s->v[i];
    return NULL;
}

/* The valid type promotions of format version 2: int to long, float to
 * double, decimal(P, S) to decimal(P', S) with P' > P. */
static bool
promotion(const char *from, const char *to)
{
    if (strcmp(from, "int") == 0 && strcmp(to, "long") == 0)
        return true;
    if (strcmp(from, "float") == 0 && strcmp(to, "double") == 0)
        return true;
    int p1, s1, p2, s2;
    return sscanf(from, "decimal(%d, %d)", &p1, &s1) == 2 &&
           sscanf(to, "decimal(%d, %d)", &p2, &s2) == 2 && s1 == s2 && p2 > p1;
}

/*
 * Whether schema `ours` (JSON) is a valid evolution of the table's current
 * schema `cur`, by field id: a field in both keeps its parent, its kind
 * (struct, list, primitive) and its type or promotes it, and does not turn
 * from optional to required; a field the current schema lacks but an older
 * schema of the table had (dropped, now back) has its old type. Renames,
 * adds, drops and reorders are free. *retyped: some field promoted its type.
 * 0, LB_ESCHEMA with a message naming the field, LB_EPARSE or -ENOMEM.
 */
static int
check_evolution(lake_iceberg_table *t, const json_t *cur, const json_t *ours, bool *retyped)
{
    sigs old = {0}, neu = {0}, ever = {0};
    int rc = sig_walk(&old, cur, 0);
    if (rc == 0)
        rc = sig_walk(&neu, ours, 0);
    size_t i;
    json_t *sch;
    json_array_foreach(json_object_get(t->meta, "schemas"), i, sch)
    {
        if (rc == 0)
            rc = sig_walk(&ever, sch, 0);
    }
    if (rc == LB_EPARSE)
        rc = terr(t, rc, "a schema of the table is not an Iceberg schema");
    *retyped = false;
    for (size_t k = 0; rc == 0 && k < neu.n; k++) {
        const field_sig *n = &neu.v[k], *o = sig_find(&old, n->id);
        if (!o) {
            const field_sig *e = sig_find(&ever, n->id);
            if (e && (e->parent != n->parent || strcmp(e->type, n->type) != 0))
                rc = terr(t, LB_ESCHEMA,
                          "field id %d was %s in an older schema; it cannot come back as %s",
                          (int)n->id, e->type, n->type);
            continue;
        }
        if (o->parent != n->parent)
            rc = terr(t, LB_ESCHEMA, "field id %d moves from parent %d to %d", (int)n->id,
                      (int)o->parent, (int)n->parent);
        else if (strcmp(o->type, n->type) != 0 && !promotion(o->type, n->type))
            rc = terr(t, LB_ESCHEMA,
                      "field id %d changes type from %s to %s, which is not a promotion",
                      (int)n->id, o->type, n->type);
        else if (n->required && !o->required)
            rc = terr(t, LB_ESCHEMA, "field id %d turns from optional to required", (int)n->id);
        else if (strcmp(o->type, n->type) != 0)
            *retyped = true;
    }
    if (rc == 0 && old.n) {
        t->old_ids = malloc(old.n * sizeof(int32_t));
        if (!t->old_ids)
            rc = -ENOMEM;
        for (size_t k = 0; rc == 0 && k < old.n; k++)
            t->old_ids[t->nold_ids++] = old.v[k].id;
    }
    free(old.v);
    free(neu.v);
    free(ever.v);
    return rc;
}

static int
load_table(lake_iceberg_table *t, const char *schema_json)
{
    char *dir = key_of(t, "metadata/");
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = dir ? lake_store_list(t->core.store, dir, &l) : -ENOMEM;
    if (rc) {
        free(dir);
        return terr(t, rc, "%s", lake_store_error(t->core.store));
    }
    int64_t newest = 0;
    for (size_t i = 0; i < l.nobjects; i++) {
        const char *name = l.objects[i].key + strlen(dir);
        long long v;
        char tail[32];
        if (sscanf(name, "v%lld.metadata.jso%1[n]", &v, tail) == 2 && v > newest &&
            strcmp(strchr(name, '.'), ".metadata.json") == 0)
            newest = v;
    }
    lb_objstore_list_free(&l);
    free(dir);
    if (newest == 0)
        return 0;
    char *key = metadata_key(t, newest);
    lb_buf body = LB_BUF_INIT;
    rc = key ? lake_store_get(t->core.store, key, &body) : -ENOMEM;
    free(key);
    if (rc) {
        lb_buf_free(&body);
        return terr(t, rc, "%s", lake_store_error(t->core.store));
    }
    json_error_t jerr;
    json_t *meta = json_loadb(body.data, body.len, 0, &jerr);
    lb_buf_free(&body);
    if (!meta)
        return terr(t, LB_EPARSE, "v%lld.metadata.json is not JSON: %s", (long long)newest,
                    jerr.text);
    t->meta = meta;
    t->version = newest;
    if (json_integer_value(json_object_get(meta, "format-version")) != 2)
        return terr(t, LB_EUNSUPPORTED, "only format version 2 is supported");
    const char *loc = json_string_value(json_object_get(meta, "location"));
    if (!loc)
        return terr(t, LB_EPARSE, "metadata has no location");
    free(t->location);
    if (!(t->location = strdup(loc)))
        return -ENOMEM;
    json_t *spec = json_array_get(json_object_get(meta, "partition-specs"), 0);
    if (json_array_size(json_object_get(meta, "partition-specs")) != 1 ||
        json_array_size(json_object_get(spec, "fields")) != 0)
        return terr(t, LB_EUNSUPPORTED, "partitioned tables are not supported");
    /* the current schema: ours, or one that ours evolves (a new schema id) */
    json_int_t sid = json_integer_value(json_object_get(meta, "current-schema-id"));
    json_t *cur = NULL, *s;
    size_t i;
    json_int_t max_sid = -1;
    json_array_foreach(json_object_get(meta, "schemas"), i, s)
    {
        json_int_t id = json_integer_value(json_object_get(s, "schema-id"));
        if (id == sid)
            cur = s;
        if (id > max_sid)
            max_sid = id;
    }
    if (!cur)
        return terr(t, LB_EPARSE, "current schema %lld is not in the metadata", (long long)sid);
    char *cur_text = json_dumps(json_object_get(cur, "fields"), JSON_COMPACT);
    json_t *ours = json_loads(schema_json, 0, NULL);
    char *our_text = ours ? json_dumps(json_object_get(ours, "fields"), JSON_COMPACT) : NULL;
    rc = cur_text && our_text ? 0 : -ENOMEM;
    bool same = rc == 0 && strcmp(cur_text, our_text) == 0;
    free(cur_text);
    free(our_text);
    if (rc == 0 && same) {
        t->schema_id = (int32_t)sid;
        /* every field of the current schema is known */
        rc = check_evolution(t, cur, ours, &t->retyped);
    } else if (rc == 0) {
        rc = check_evolution(t, cur, ours, &t->retyped);
        if (rc == LB_ESCHEMA)
            lb_err_prefix(t->err,
                          "the table's schema (v%lld.metadata.json) cannot evolve to the "
                          "given one",
                          (long long)newest);
        t->evolve = true;
        t->schema_id = (int32_t)max_sid + 1;
    }
    json_decref(ours);
    if (rc)
        return rc;
    if (t->schema_id != 0) {
        /* the manifests' "schema" header carries the schema's id */
        json_t *j = json_loads(schema_json, 0, NULL);
        char *text = NULL;
        if (j && json_object_set_new(j, "schema-id", json_integer(t->schema_id)) == 0)
            text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!text)
            return -ENOMEM;
        free(t->schema_json);
        t->schema_json = text;
    }
    return load_snapshot(t);
}

void
lake_iceberg_close(lake_iceberg_table *t)
{
    if (!t)
        return;
    free_state(t->manifests, t->nmanifests, t->live, t->nlive);
    lake_avro_schema_free(t->manifest_schema);
    lake_avro_schema_free(t->list_schema);
    json_decref(t->meta);
    free(t->location);
    free(t->schema_json);
    free(t->old_ids);
    lake__core_free(&t->core);
    free(t);
}

int
lake_iceberg_open(lake_store *store, const char *prefix, lake_schema *schema,
                  const lake_iceberg_options *opts, lake_iceberg_table **out, lb_err *err)
{
    lb_err local;
    if (!err)
        err = &local;
    err->code = 0, err->message[0] = 0;
    if (!out)
        return lb_err_set(err, -EINVAL, "iceberg table: out is required");
    lake_iceberg_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->err = err;
    int32_t max_id = 0;
    json_t *sobj = NULL;
    int rc = lake__core_init(&t->core, "iceberg", store, prefix, schema, err);
    if (rc == 0 && !(sobj = schema_object(schema, &max_id, err)))
        rc = err->code;
    if (rc == 0 && !(t->schema_json = json_dumps(sobj, JSON_COMPACT)))
        rc = -ENOMEM;
    if (rc == 0 && ((rc = lake_avro_schema_parse(MANIFEST_SCHEMA, strlen(MANIFEST_SCHEMA),
                                                 &t->manifest_schema, err)) ||
                    (rc = lake_avro_schema_parse(MANIFEST_LIST_SCHEMA, strlen(MANIFEST_LIST_SCHEMA),
                                                 &t->list_schema, err))))
        lb_err_prefix(err, "internal schema");
    if (rc == 0 && asprintf(&t->location, "%s/%s", lake_store_url(store), t->core.prefix) < 0) {
        t->location = NULL;
        rc = -ENOMEM;
    }
    t->max_id = max_id;
    if (rc == 0)
        rc = load_table(t, t->schema_json);
    if (rc == 0 && !t->meta)
        rc = create_table(t, opts, sobj, max_id); /* "O": takes its own reference */
    json_decref(sobj);
    if (rc) {
        if (rc != -ENOMEM && strncmp(err->message, "iceberg table", 13) != 0)
            lb_err_prefix(err, "iceberg table \"%.150s\"", prefix);
        lake_iceberg_close(t);
        return rc;
    }
    t->err = NULL;
    *out = t;
    return 0;
}

/* ---- writing manifests --------------------------------------------------------- */

/* Scratch memory for one data_file value; freed after the entry is written. */
typedef struct df_scratch {
    lake_avro_value fields[DF_NFIELDS];
    lake_avro_value *kv;   /* key/value pairs of the six maps */
    lake_avro_value *recs; /* records of the six maps */
    uint8_t (*dec)[2][16]; /* minimal decimal bounds */
    lake_avro_value split, split_item;
    char *uri;
} df_scratch;

static void
df_scratch_free(df_scratch *d)
{
    free(d->kv);
    free(d->recs);
    free(d->dec);
    free(d->uri);
}

/* Iceberg's decimal bound: the unscaled value, big-endian, fewest bytes. */
static size_t
minimal_be(__int128 v, uint8_t out[16])
{
    uint8_t full[16];
    for (int i = 0; i < 16; i++)
        full[15 - i] = (uint8_t)((unsigned __int128)v >> (8 * i));
    int start = 0;
    while (start < 15 && ((full[start] == 0x00 && !(full[start + 1] & 0x80)) ||
                          (full[start] == 0xff && (full[start + 1] & 0x80))))
        start++;
    memcpy(out, full + start, (size_t)(16 - start));
    return (size_t)(16 - start);
}

static int
build_data_file(lake_iceberg_table *t, const lake_data_file *f, df_scratch *d, lake_avro_value *out)
{
    memset(d, 0, sizeof(*d));
    /* A shared file without statistics (table.h): rows and size only. */
    const lake_parquet_file_stats *st = f->stats;
    size_t n = st ? st->ncolumns : 0;
    d->kv = calloc(6 * (n ? n : 1) * 2, sizeof(lake_avro_value));
    d->recs = calloc(6 * (n ? n : 1), sizeof(lake_avro_value));
    d->dec = calloc(n ? n : 1, sizeof(*d->dec));
    d->uri = data_uri_of(t, f->path);
    if (!d->kv || !d->recs || !d->dec || !d->uri)
        return -ENOMEM;
    size_t count[6] = {0};
    for (size_t i = 0; i < n; i++) {
        const lake_column_stats *c = &st->columns[i];
        const lake__node *node = lake__schema_node(t->core.schema, t->core.leaves.node[i]);
        int32_t id = c->field_id;
        int64_t longs[4] = {c->compressed_bytes, c->num_values, c->null_count, c->nan_count};
        for (int m = 0; m < 4; m++) {
            if (m == 3 && c->type != LAKE_TYPE_FLOAT && c->type != LAKE_TYPE_DOUBLE)
                continue;
            lake_avro_value *kv = &d->kv[((size_t)m * n + count[m]) * 2];
            kv[0] = lake_avro_int(id);
            kv[1] = lake_avro_long(longs[m]);
            d->recs[(size_t)m * n + count[m]] = lake_avro_record(kv, 2);
            count[m]++;
        }
        if (!c->has_bounds || t->core.leaves.in_list[i])
            continue;
        const uint8_t *lo = c->min, *hi = c->max;
        size_t lo_len = c->min_len, hi_len = c->max_len;
        if (node->type == LAKE_TYPE_DECIMAL) {
            lo_len = minimal_be(lake__decimal_bound(node, c->min, c->min_len), d->dec[i][0]);
            hi_len = minimal_be(lake__decimal_bound(node, c->max, c->max_len), d->dec[i][1]);
            lo = d->dec[i][0], hi = d->dec[i][1];
        } else if ((node->type == LAKE_TYPE_STRING || node->type == LAKE_TYPE_JSON) &&
                   (!lake__utf8_valid(lo, lo_len, NULL) || !lake__utf8_valid(hi, hi_len, NULL))) {
            continue; /* Iceberg string bounds must be UTF-8 */
        }
        for (int m = 4; m < 6; m++) {
            lake_avro_value *kv = &d->kv[((size_t)m * n + count[m]) * 2];
            kv[0] = lake_avro_int(id);
            kv[1] = m == 4 ? lake_avro_bytes(lo, lo_len) : lake_avro_bytes(hi, hi_len);
            d->recs[(size_t)m * n + count[m]] = lake_avro_record(kv, 2);
            count[m]++;
        }
    }
    lake_avro_value *v = d->fields;
    v[DF_CONTENT] = lake_avro_int(0);
    v[DF_PATH] = lake_avro_string(d->uri);
    v[DF_FORMAT] = lake_avro_string("PARQUET");
    v[DF_PARTITION] = lake_avro_record(NULL, 0);
    v[DF_RECORDS] = lake_avro_long(st ? st->num_rows : f->records);
    v[DF_SIZE] = lake_avro_long(st ? (int64_t)st->file_bytes : f->file_bytes);
    for (int m = 0; m < 6; m++)
        v[DF_COLUMN_SIZES + m] = lake_avro_array(&d->recs[(size_t)m * n], count[m]);
    v[DF_KEY_METADATA] = lake_avro_null();
    /* The first row group starts right after the 4-byte magic; with more
     * row groups their offsets are not known here, and the field is
     * optional. */
    d->split_item = lake_avro_long(4);
    v[DF_SPLITS] =
        st && st->num_row_groups == 1 ? lake_avro_array(&d->split_item, 1) : lake_avro_null();
    v[DF_EQUALITY_IDS] = lake_avro_null();
    v[DF_SORT_ORDER] = lake_avro_int(0);
    v[DF_REFERENCED] = lake_avro_null();
    *out = lake_avro_record(v, DF_NFIELDS);
    return 0;
}

static lake_avro_value
opt_long(lake_avro_value *slot, bool present, int64_t v)
{
    if (!present)
        return lake_avro_null();
    *slot = lake_avro_long(v);
    return lake_avro_union(1, slot);
}

/* A manifest being written, and what goes into its manifest_file. */
typedef struct new_manifest {
    lb_buf bytes;
    lake_avro_writer *w;
    manifest m; /* path, counts, min_seq; seq and added_snapshot set by caller */
    bool any_live;
} new_manifest;

static int
manifest_begin(lake_iceberg_table *t, new_manifest *nm)
{
    memset(nm, 0, sizeof(*nm));
    int rc = lake_avro_writer_new(t->manifest_schema, NULL, lake_avro_buf_sink, &nm->bytes, &nm->w,
                                  t->err);
    char sid[16];
    snprintf(sid, sizeof(sid), "%d", (int)t->schema_id);
    if (rc)
        return rc;
    if ((rc = lake_avro_set_meta_str(nm->w, "schema", t->schema_json)) ||
        (rc = lake_avro_set_meta_str(nm->w, "schema-id", sid)) ||
        (rc = lake_avro_set_meta_str(nm->w, "partition-spec", "[]")) ||
        (rc = lake_avro_set_meta_str(nm->w, "partition-spec-id", "0")) ||
        (rc = lake_avro_set_meta_str(nm->w, "format-version", "2")) ||
        (rc = lake_avro_set_meta_str(nm->w, "content", "data")))
        return rc;
    nm->m.min_seq = INT64_MAX;
    return 0;
}

static int
manifest_entry(lake_iceberg_table *t, new_manifest *nm, int status, int64_t snapshot_id,
               bool explicit_seq, int64_t seq, int64_t file_seq, const lake_avro_value *data_file,
               int64_t records, int64_t current_seq)
{
    lake_avro_value slots[3], e[5];
    e[0] = lake_avro_int(status);
    e[1] = opt_long(&slots[0], true, snapshot_id);
    e[2] = opt_long(&slots[1], explicit_seq, seq);
    e[3] = opt_long(&slots[2], explicit_seq, file_seq);
    e[4] = *data_file;
    lake_avro_value entry = lake_avro_record(e, 5);
    int rc = lake_avro_write(nm->w, &entry);
    if (rc)
        return terr(t, rc, "writing a manifest entry: %s", lake_avro_writer_error(nm->w));
    int64_t data_seq = explicit_seq ? seq : current_seq;
    switch (status) {
    case ST_ADDED:
        nm->m.added++, nm->m.added_rows += records;
        break;
    case ST_EXISTING:
        nm->m.existing++, nm->m.existing_rows += records;
        break;
    default:
        nm->m.deleted++, nm->m.deleted_rows += records;
        return 0;
    }
    nm->any_live = true;
    if (data_seq < nm->m.min_seq)
        nm->m.min_seq = data_seq;
    return 0;
}

/* Close the manifest and store it under a fresh name. */
static int
manifest_finish(lake_iceberg_table *t, new_manifest *nm, const char *uuid, int k, int64_t seq)
{
    int rc = lake_avro_writer_close(nm->w);
    if (rc)
        return terr(t, rc, "closing a manifest: %s", lake_avro_writer_error(nm->w));
    char rel[128];
    snprintf(rel, sizeof(rel), "metadata/%s-m%d.avro", uuid, k);
    char *key = key_of(t, rel);
    nm->m.path = uri_of(t, rel);
    if (!key || !nm->m.path) {
        free(key);
        return -ENOMEM;
    }
    rc = lake_store_put_new(t->core.store, key, nm->bytes.data, nm->bytes.len);
    free(key);
    if (rc)
        return terr(t, rc, "%s", lake_store_error(t->core.store));
    nm->m.length = (int64_t)nm->bytes.len;
    nm->m.seq = seq;
    if (nm->m.min_seq == INT64_MAX)
        nm->m.min_seq = seq;
    return 0;
}

static void
manifest_drop(new_manifest *nm)
{
    lake_avro_writer_free(nm->w);
    lb_buf_free(&nm->bytes);
    free(nm->m.path);
    nm->w = NULL;
    nm->m.path = NULL;
}

/* Rewrite manifest `old`: removed files DELETED, the rest EXISTING. */
static int
rewrite_manifest(lake_iceberg_table *t, const manifest *old, const char *const *removes,
                 size_t nremoves, int64_t snapshot_id, int64_t seq, new_manifest *nm)
{
    lb_buf bytes = LB_BUF_INIT;
    lake_avro_reader *r = NULL;
    int rc = get_object(t, old->path, &bytes);
    if (rc == 0)
        rc = open_avro(t, &bytes, t->manifest_schema, "manifest", &r);
    if (rc == 0)
        rc = manifest_begin(t, nm);
    const lake_avro_value *v;
    while (rc == 0 && (rc = lake_avro_reader_next(r, &v)) == 1) {
        rc = 0;
        int status = fld(v, 0)->u.i;
        if (status == ST_DELETED)
            continue; /* recorded by the snapshot that deleted it */
        const lake_avro_value *df = fld(v, 4);
        const lake_avro_value *ps = fld(v, 1), *pseq = fld(v, 2), *pfseq = fld(v, 3);
        /* resolve inheritance against the manifest the entry came from */
        int64_t added_by = ps->kind == LAKE_AVRO_LONG ? ps->u.l : old->added_snapshot;
        int64_t dseq = pseq->kind == LAKE_AVRO_LONG ? pseq->u.l : old->seq;
        int64_t fseq = pfseq->kind == LAKE_AVRO_LONG ? pfseq->u.l : old->seq;
        const lake_avro_value *pv = fld(df, DF_PATH);
        bool removed = false;
        for (size_t i = 0; i < nremoves && !removed; i++) {
            char *ru = data_uri_of(t, removes[i]);
            if (!ru) {
                rc = -ENOMEM;
                break;
            }
            removed = pv->u.bytes.len == strlen(ru) && memcmp(pv->u.bytes.ptr, ru, strlen(ru)) == 0;
            free(ru);
        }
        if (rc)
            break;
        rc = manifest_entry(t, nm, removed ? ST_DELETED : ST_EXISTING,
                            removed ? snapshot_id : added_by, true, dseq, fseq, df,
                            fld(df, DF_RECORDS)->u.l, seq);
    }
    if (rc < 0 && r && !t->err->message[0])
        terr(t, rc, "manifest \"%s\": %s", old->path, lake_avro_reader_error(r));
    lake_avro_reader_free(r);
    lb_buf_free(&bytes);
    return rc;
}

static int
write_manifest_list(lake_iceberg_table *t, const manifest *ms, size_t n, int64_t snapshot_id,
                    int64_t parent, int64_t seq, char **uri_out)
{
    lb_buf bytes = LB_BUF_INIT;
    lake_avro_writer *w = NULL;
    int rc = lake_avro_writer_new(t->list_schema, NULL, lake_avro_buf_sink, &bytes, &w, t->err);
    if (rc)
        return rc;
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, snapshot_id);
    rc = lake_avro_set_meta_str(w, "snapshot-id", num);
    if (parent > 0)
        snprintf(num, sizeof(num), "%" PRId64, parent);
    else
        snprintf(num, sizeof(num), "null");
    if (rc == 0)
        rc = lake_avro_set_meta_str(w, "parent-snapshot-id", num);
    snprintf(num, sizeof(num), "%" PRId64, seq);
    if (rc == 0)
        rc = lake_avro_set_meta_str(w, "sequence-number", num);
    if (rc == 0)
        rc = lake_avro_set_meta_str(w, "format-version", "2");
    for (size_t i = 0; i < n && rc == 0; i++) {
        const manifest *m = &ms[i];
        lake_avro_value f[MF_NFIELDS];
        f[0] = lake_avro_string(m->path);
        f[1] = lake_avro_long(m->length);
        f[2] = lake_avro_int(0);
        f[3] = lake_avro_int(0);
        f[4] = lake_avro_long(m->seq);
        f[5] = lake_avro_long(m->min_seq);
        f[6] = lake_avro_long(m->added_snapshot);
        f[7] = lake_avro_int(m->added);
        f[8] = lake_avro_int(m->existing);
        f[9] = lake_avro_int(m->deleted);
        f[10] = lake_avro_long(m->added_rows);
        f[11] = lake_avro_long(m->existing_rows);
        f[12] = lake_avro_long(m->deleted_rows);
        f[13] = lake_avro_array(NULL, 0); /* unpartitioned: no field summaries */
        f[14] = lake_avro_null();
        lake_avro_value rec = lake_avro_record(f, MF_NFIELDS);
        if ((rc = lake_avro_write(w, &rec)))
            terr(t, rc, "manifest list: %s", lake_avro_writer_error(w));
    }
    if (rc == 0 && (rc = lake_avro_writer_close(w)))
        terr(t, rc, "manifest list: %s", lake_avro_writer_error(w));
    lake_avro_writer_free(w);
    char uuid[37], rel[160];
    lake__uuid4(uuid);
    snprintf(rel, sizeof(rel), "metadata/snap-%" PRId64 "-1-%s.avro", snapshot_id, uuid);
    char *key = key_of(t, rel);
    *uri_out = uri_of(t, rel);
    if (rc == 0 && (!key || !*uri_out))
        rc = -ENOMEM;
    if (rc == 0 && (rc = lake_store_put_new(t->core.store, key, bytes.data, bytes.len)))
        terr(t, rc, "%s", lake_store_error(t->core.store));
    free(key);
    lb_buf_free(&bytes);
    return rc;
}

/* ---- commit -------------------------------------------------------------------- */

static void
summary_set(json_t *sum, const char *key, long long v)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", v);
    json_object_set_new(sum, key, json_string(num));
}

/* Record the caller's schema in meta (a copy of the current metadata) as
 * the new current schema. */
static int
add_schema(lake_iceberg_table *t, json_t *meta)
{
    json_t *j = json_loads(t->schema_json, 0, NULL);
    if (!j || json_array_append_new(json_object_get(meta, "schemas"), j))
        return -ENOMEM;
    json_int_t last = json_integer_value(json_object_get(meta, "last-column-id"));
    json_object_set_new(meta, "current-schema-id", json_integer(t->schema_id));
    json_object_set_new(meta, "last-column-id", json_integer(t->max_id > last ? t->max_id : last));
    return 0;
}

/* A commit of a schema change alone: a new metadata version with the new
 * schema current, and no snapshot (the current one stays: readers of a
 * branch read its files with the table's current schema). */
static int
schema_only_commit(lake_iceberg_table *t)
{
    json_t *meta = json_deep_copy(t->meta);
    char rel[64];
    snprintf(rel, sizeof(rel), "metadata/v%" PRId64 ".metadata.json", t->version);
    char *prev = uri_of(t, rel);
    int64_t now = lake__now_ms();
    int rc = meta && prev ? add_schema(t, meta) : -ENOMEM;
    if (rc == 0) {
        json_object_set_new(meta, "last-updated-ms", json_integer(now));
        json_array_append_new(
            json_object_get(meta, "metadata-log"),
            json_pack("{s:I, s:s}", "timestamp-ms",
                      json_integer_value(json_object_get(t->meta, "last-updated-ms")),
                      "metadata-file", prev));
        rc = put_metadata(t, meta, t->version + 1);
    }
    free(prev);
    if (rc) {
        json_decref(meta);
        return rc;
    }
    put_hint(t, t->version + 1);
    json_decref(t->meta);
    t->meta = meta;
    t->version++;
    t->evolve = false;
    return 0;
}

static int
ice_commit(lake_iceberg_table *t, const lake_commit *c, int64_t *snapshot_id_out)
{
    const lake_data_file *adds = c->adds;
    const char *const *removes = c->removes;
    size_t nadds = c->nadds, nremoves = c->nremoves;
    char at[48];
    snprintf(at, sizeof(at), "snapshot %lld", (long long)lake_iceberg_snapshot_id(t));
    if (nadds + nremoves == 0 && t->evolve) {
        int rc = lake__check_summary(c->summary, t->err);
        return rc ? rc : schema_only_commit(t);
    }
    int rc = lake__check_commit(&t->core, c, at, false, t->err);
    if (rc)
        return rc;

    int64_t parent = lake_iceberg_snapshot_id(t);
    int64_t seq = lake_iceberg_sequence_number(t) + 1;
    int64_t snapshot_id;
    bool unique;
    do {
        snapshot_id = lake__random_id();
        unique = true;
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(t->meta, "snapshots"), i, s)
        {
            if (json_integer_value(json_object_get(s, "snapshot-id")) == snapshot_id)
                unique = false;
        }
    } while (!unique);
    int64_t now = lake__now_ms();
    char uuid[37];
    lake__uuid4(uuid);

    /* Which manifests lose files, and what the snapshot removes. */
    bool *touched = calloc(t->nmanifests ? t->nmanifests : 1, sizeof(bool));
    size_t *live_in = calloc(t->nmanifests ? t->nmanifests : 1, sizeof(size_t));
    size_t wcap = t->nmanifests + 1;
    manifest *next = calloc(wcap, sizeof(manifest));      /* paths NULL until copied */
    size_t *origin = calloc(wcap, sizeof(size_t));        /* old index, or SIZE_MAX */
    const char **src_path = calloc(wcap, sizeof(char *)); /* borrowed */
    new_manifest *written = calloc(wcap, sizeof(new_manifest));
    size_t nnext = 0, nwritten = 0;
    char *list_uri = NULL;
    if (!touched || !live_in || !next || !origin || !src_path || !written) {
        rc = -ENOMEM;
        goto done;
    }
    long long removed_rows = 0, removed_bytes = 0, added_rows = 0, added_bytes = 0;
    for (size_t i = 0; i < nremoves; i++) {
        const live_file *l = &t->live[lake__live_find(&t->core, removes[i])];
        touched[l->manifest] = true;
        removed_rows += l->records;
        removed_bytes += l->bytes;
    }
    for (size_t i = 0; i < t->nlive; i++)
        live_in[t->live[i].manifest]++;

    for (size_t i = 0; i < t->nmanifests && rc == 0; i++) {
        if (!touched[i]) {
            if (live_in[i] == 0)
                continue; /* only DELETED entries left: not part of the new snapshot */
            next[nnext] = t->manifests[i];
            next[nnext].path = NULL;
            src_path[nnext] = t->manifests[i].path;
            origin[nnext++] = i;
            continue;
        }
        new_manifest *nm = &written[nwritten];
        rc = rewrite_manifest(t, &t->manifests[i], removes, nremoves, snapshot_id, seq, nm);
        if (rc == 0)
            rc = manifest_finish(t, nm, uuid, (int)nwritten, seq);
        if (rc)
            break;
        nm->m.added_snapshot = snapshot_id;
        nwritten++;
        next[nnext] = nm->m;
        next[nnext].path = NULL;
        src_path[nnext] = nm->m.path;
        origin[nnext++] = SIZE_MAX;
    }
    if (rc == 0 && nadds) {
        new_manifest *nm = &written[nwritten];
        rc = manifest_begin(t, nm);
        for (size_t i = 0; i < nadds && rc == 0; i++) {
            df_scratch d;
            lake_avro_value dfv;
            rc = build_data_file(t, &adds[i], &d, &dfv);
            const lake_parquet_file_stats *st = adds[i].stats;
            int64_t rows = st ? st->num_rows : adds[i].records;
            if (rc == 0)
                rc = manifest_entry(t, nm, ST_ADDED, snapshot_id, false, 0, 0, &dfv, rows, seq);
            df_scratch_free(&d);
            added_rows += rows;
            added_bytes += st ? (long long)st->file_bytes : (long long)adds[i].file_bytes;
        }
        if (rc == 0)
            rc = manifest_finish(t, nm, uuid, (int)nwritten, seq);
        if (rc == 0) {
            nm->m.added_snapshot = snapshot_id;
            nwritten++;
            next[nnext] = nm->m;
            next[nnext].path = NULL;
            src_path[nnext] = nm->m.path;
            origin[nnext++] = SIZE_MAX;
        }
    }
    for (size_t i = 0; i < nnext && rc == 0; i++)
        if (!(next[i].path = strdup(src_path[i])))
            rc = -ENOMEM;
    if (rc == 0)
        rc = write_manifest_list(t, next, nnext, snapshot_id, parent, seq, &list_uri);
    if (rc)
        goto done;

    /* The new metadata. */
    long long total_rows = 0, total_bytes = 0;
    for (size_t i = 0; i < t->nlive; i++)
        total_rows += t->live[i].records, total_bytes += t->live[i].bytes;
    total_rows += added_rows - removed_rows;
    total_bytes += added_bytes - removed_bytes;
    json_t *meta = json_deep_copy(t->meta);
    json_t *sum = json_object();
    if (!meta || !sum) {
        json_decref(meta);
        json_decref(sum);
        rc = -ENOMEM;
        goto done;
    }
    json_object_set_new(sum, "operation",
                        json_string(nremoves == 0 ? "append"
                                    : nadds == 0  ? "delete"
                                                  : "overwrite"));
    summary_set(sum, "added-data-files", (long long)nadds);
    summary_set(sum, "deleted-data-files", (long long)nremoves);
    summary_set(sum, "added-records", added_rows);
    summary_set(sum, "deleted-records", removed_rows);
    summary_set(sum, "added-files-size", added_bytes);
    summary_set(sum, "removed-files-size", removed_bytes);
    summary_set(sum, "changed-partition-count", 1);
    summary_set(sum, "total-records", total_rows);
    summary_set(sum, "total-files-size", total_bytes);
    summary_set(sum, "total-data-files", (long long)(t->nlive + nadds - nremoves));
    summary_set(sum, "total-delete-files", 0);
    summary_set(sum, "total-position-deletes", 0);
    summary_set(sum, "total-equality-deletes", 0);
    for (size_t i = 0; c->summary && c->summary[i]; i += 2)
        json_object_set_new(sum, c->summary[i], json_string(c->summary[i + 1]));
    json_t *snap =
        json_pack("{s:I, s:I, s:I, s:o, s:s, s:i}", "snapshot-id", (json_int_t)snapshot_id,
                  "sequence-number", (json_int_t)seq, "timestamp-ms", (json_int_t)now, "summary",
                  sum, "manifest-list", list_uri, "schema-id", (int)t->schema_id);
    if (snap && parent > 0)
        json_object_set_new(snap, "parent-snapshot-id", json_integer(parent));
    char *prev = NULL;
    char rel[64];
    snprintf(rel, sizeof(rel), "metadata/v%" PRId64 ".metadata.json", t->version);
    prev = uri_of(t, rel);
    json_t *refs = json_pack("{s:{s:I, s:s}}", "main", "snapshot-id", (json_int_t)snapshot_id,
                             "type", "branch");
    if (!snap || !prev || !refs) {
        json_decref(meta);
        json_decref(snap);
        json_decref(refs);
        free(prev);
        rc = -ENOMEM;
        goto done;
    }
    if (t->evolve && (rc = add_schema(t, meta))) {
        json_decref(meta);
        json_decref(snap);
        json_decref(refs);
        free(prev);
        goto done;
    }
    json_object_set_new(meta, "last-sequence-number", json_integer(seq));
    json_object_set_new(meta, "last-updated-ms", json_integer(now));
    json_object_set_new(meta, "current-snapshot-id", json_integer(snapshot_id));
    json_object_set_new(meta, "refs", refs);
    json_array_append_new(json_object_get(meta, "snapshots"), snap);
    json_array_append_new(json_object_get(meta, "snapshot-log"),
                          json_pack("{s:I, s:I}", "timestamp-ms", (json_int_t)now, "snapshot-id",
                                    (json_int_t)snapshot_id));
    json_array_append_new(json_object_get(meta, "metadata-log"),
                          json_pack("{s:I, s:s}", "timestamp-ms",
                                    json_integer_value(json_object_get(t->meta, "last-updated-ms")),
                                    "metadata-file", prev));
    free(prev);
    rc = put_metadata(t, meta, t->version + 1);
    if (rc) {
        json_decref(meta);
        goto done;
    }
    /* Committed: the handle follows. */
    t->evolve = false;
    put_hint(t, t->version + 1);
    json_decref(t->meta);
    t->meta = meta;
    t->version++;
    {
        /* live set: drop removed, remap manifests, add new files */
        size_t *remap = malloc((t->nmanifests ? t->nmanifests : 1) * sizeof(size_t));
        live_file *live = calloc(t->nlive + nadds + 1, sizeof(live_file));
        if (!remap || !live) {
            free(remap);
            free(live);
            rc = -ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < t->nmanifests; i++)
            remap[i] = SIZE_MAX;
        size_t w = 0; /* index of the next rewritten manifest in next[] */
        for (size_t i = 0; i < nnext; i++)
            if (origin[i] != SIZE_MAX)
                remap[origin[i]] = i;
        for (size_t i = 0; i < t->nmanifests; i++)
            if (touched[i]) {
                while (w < nnext && origin[w] != SIZE_MAX)
                    w++;
                remap[i] = w++;
            }
        size_t nl = 0;
        for (size_t i = 0; i < t->nlive; i++) {
            bool gone = false;
            for (size_t k = 0; k < nremoves && !gone; k++)
                gone = strcmp(t->live[i].path, removes[k]) == 0;
            if (gone) {
                free(t->live[i].path);
                continue;
            }
            live[nl] = t->live[i];
            live[nl++].manifest = remap[t->live[i].manifest];
        }
        for (size_t i = 0; i < nadds; i++) {
            live[nl].path = strdup(adds[i].path);
            live[nl].manifest = nnext - 1;
            const lake_parquet_file_stats *st = adds[i].stats;
            live[nl].records = st ? st->num_rows : adds[i].records;
            live[nl++].bytes = st ? (int64_t)st->file_bytes : adds[i].file_bytes;
        }
        qsort(live, nl, sizeof(live_file), cmp_live);
        free(t->live);
        t->live = live;
        t->nlive = nl;
        free(remap);
        free_state(t->manifests, t->nmanifests, NULL, 0);
        t->manifests = next;
        t->nmanifests = nnext;
        next = NULL;
        nnext = 0;
        rc = sync_core(t);
    }
    if (snapshot_id_out)
        *snapshot_id_out = snapshot_id;
done:
    for (size_t i = 0; written && i < wcap; i++)
        manifest_drop(&written[i]);
    for (size_t i = 0; next && i < nnext; i++)
        free(next[i].path);
    free(next);
    free(origin);
    free(src_path);
    free(written);
    free(touched);
    free(live_in);
    free(list_uri);
    return rc;
}

/* ---- accessors ------------------------------------------------------------------ */

int64_t
lake_iceberg_version(const lake_iceberg_table *t)
{
    return t->version;
}

int64_t
lake_iceberg_snapshot_id(const lake_iceberg_table *t)
{
    json_t *id = json_object_get(t->meta, "current-snapshot-id");
    return json_is_integer(id) ? (int64_t)json_integer_value(id) : -1;
}

int64_t
lake_iceberg_sequence_number(const lake_iceberg_table *t)
{
    return (int64_t)json_integer_value(json_object_get(t->meta, "last-sequence-number"));
}

int32_t
lake_iceberg_schema_id(const lake_iceberg_table *t)
{
    return t->schema_id;
}

bool
lake_iceberg_schema_pending(const lake_iceberg_table *t)
{
    return t->evolve;
}

bool
lake_iceberg_schema_retyped(const lake_iceberg_table *t)
{
    return t->retyped;
}

bool
lake_iceberg_field_existed(const lake_iceberg_table *t, int32_t field_id)
{
    for (size_t i = 0; i < t->nold_ids; i++)
        if (t->old_ids[i] == field_id)
            return true;
    return false;
}

size_t
lake_iceberg_live_count(const lake_iceberg_table *t)
{
    return t->nlive;
}

const char *
lake_iceberg_live_path(const lake_iceberg_table *t, size_t i)
{
    return i < t->nlive ? t->live[i].path : NULL;
}

int
lake_iceberg_commit(lake_iceberg_table *t, const lake_data_file *adds, size_t nadds,
                    const char *const *removes, size_t nremoves, int64_t *snapshot_id_out,
                    lb_err *err)
{
    lb_err local;
    t->err = err ? err : &local;
    t->err->code = 0, t->err->message[0] = 0;
    lake_commit c = {.adds = adds, .nadds = nadds, .removes = removes, .nremoves = nremoves};
    int rc = ice_commit(t, &c, snapshot_id_out);
    t->err = NULL;
    return rc;
}

/* ---- the format ------------------------------------------------------------- */

static int
fmt_open(lake_store *store, const char *prefix, lake_schema *schema, const lake_table_options *opts,
         void **state, lb_err *err)
{
    lake_iceberg_options o = {.properties = opts ? opts->properties : NULL};
    return lake_iceberg_open(store, prefix, schema, &o, (lake_iceberg_table **)state, err);
}

static int
fmt_commit(void *state, const lake_commit *c, lb_err *err)
{
    lake_iceberg_table *t = state;
    lb_err local;
    t->err = err ? err : &local;
    t->err->code = 0, t->err->message[0] = 0;
    int rc = ice_commit(t, c, NULL);
    t->err = NULL;
    return rc;
}

static size_t
fmt_live_count(const void *state)
{
    return lake_iceberg_live_count(state);
}

static const char *
fmt_live_path(const void *state, size_t i)
{
    return lake_iceberg_live_path(state, i);
}

static const char *
fmt_summary_value(const void *state, const char *key)
{
    const lake_iceberg_table *t = state;
    json_t *snap = current_snapshot(t->meta);
    return json_string_value(json_object_get(json_object_get(snap, "summary"), key));
}

static void
fmt_close(void *state)
{
    lake_iceberg_close(state);
}

static int
fmt_live_size(const void *state, const char *path, int64_t *records, int64_t *bytes)
{
    const lake_iceberg_table *t = state;
    live_file key = {.path = (char *)path};
    const live_file *l =
        t->nlive ? bsearch(&key, t->live, t->nlive, sizeof(live_file), cmp_live) : NULL;
    if (!l)
        return LB_ENOTFOUND;
    *records = l->records;
    *bytes = l->bytes;
    return 0;
}

static bool
fmt_schema_pending(const void *state)
{
    return lake_iceberg_schema_pending(state);
}

const lake_table_format lake_iceberg_format = {
    .name = "iceberg",
    .open = fmt_open,
    .commit = fmt_commit,
    .live_count = fmt_live_count,
    .live_path = fmt_live_path,
    .summary_value = fmt_summary_value,
    .live_size = fmt_live_size,
    .schema_pending = fmt_schema_pending,
    .close = fmt_close,
};
