#ifndef CPGQUERY_SHIM_H
#define CPGQUERY_SHIM_H
// libpg_query (Debian libpg-query-dev): PostgreSQL 15's own parser. It ships no
// pkg-config file; the header is /usr/include/pg_query.h.
#include <pg_query.h>
#endif
