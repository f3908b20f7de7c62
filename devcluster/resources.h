/*
 * resources.h: the kinds the API server serves, built in and from CRDs.
 *
 * The table of built-in kinds is static. Custom resources are rebuilt from
 * the stored CustomResourceDefinitions (dc_resources_reload) whenever a CRD
 * changes, under the store lock, which also guards every lookup.
 */
#ifndef DC_RESOURCES_H
#define DC_RESOURCES_H

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

typedef struct dc_resource {
    char group[128];
    char version[64];
    char plural[128];
    char singular[128];
    char kind[128];
    char list_kind[140];
    char key[260]; /* storage key "GROUP/PLURAL" */
    bool namespaced;
    bool has_status;     /* a status subresource: main writes keep status */
    bool has_scale;      /* a scale subresource */
    bool has_generation; /* metadata.generation counts spec changes */
    bool storage_version;
    bool custom;      /* from a CRD */
    bool create_only; /* a review: POST only, nothing stored */
    const char *short_names[6];
    const char *subresources[4]; /* beyond status and scale: "log", "token" */
    /* custom resources only (references owned by the registry) */
    json_t *schema;          /* openAPIV3Schema of this version, or NULL */
    json_t *printer_columns; /* additionalPrinterColumns, or NULL */
    char scale_spec_path[128];
    char scale_status_path[128];
    char scale_selector_path[128];
    char *crd_short_names; /* owned, "a,b" */
    char *crd_categories;  /* owned */
} dc_resource;

/* Load the CRDs from the store (lock held). */
int dc_resources_reload(dc_store *s);
/* Lookup by group ("" for core), version and plural; NULL if unknown. */
const dc_resource *dc_resources_find(const char *group, const char *version, const char *plural);
/* Lookup by group and kind (any served version); NULL if unknown. */
const dc_resource *dc_resources_find_kind(const char *group, const char *kind);
/* Any served version of group/plural (for ownerReference lookups). */
const dc_resource *dc_resources_by_key(const char *key);
/* Iterate: every served (group, version, resource), built-ins first. */
int dc_resources_count(void);
const dc_resource *dc_resources_at(int i);
void dc_resources_free(void);

#endif
