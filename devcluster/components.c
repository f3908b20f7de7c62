/*
 * components.c: the list of components `devcluster up` starts after the API
 * server (see components.h). Add yours here.
 */
#include "components.h"

#include <stddef.h>

const dc_component *const dc_components[] = {
    NULL,
};
