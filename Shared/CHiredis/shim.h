#ifndef CIRCLE_CHIREDIS_SHIM_H
#define CIRCLE_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
