/*
 * components.c: the list of components `devcluster up` starts after the API
 * server (see components.h). Add yours here.
 */
#include "components.h"

#include <stddef.h>

#include "node.h"

const dc_component *const dc_components[] = {
    &dc_node_component,
    NULL,
};
