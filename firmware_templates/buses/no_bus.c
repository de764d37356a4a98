/* No external bus: on-chip and host-fed (replay) sensors read through their own registers or
 * the protocol; tinyml_bus.h defines the bus calls as "no bus". */
#define TINYML_BUS_KIND_NONE
#include "tinyml_bus.h"
