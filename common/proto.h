/* The understudy protocol: the one contract between the three roles.
 * Bump PROTO_VERSION on any change a peer could notice; never reuse a
 * retired event name or route.  docs/protocol.md describes every route. */
#ifndef UNDERSTUDY_PROTO_H
#define UNDERSTUDY_PROTO_H

#define PROTO_VERSION 1

/* Every request and reply carries the version in this header, and every
 * event body in its "proto" member. */
#define PROTO_HEADER "X-Understudy-Protocol"
/* "Authorization: Bearer <secret of the link>" on every request. */
#define PROTO_AUTH_HEADER "Authorization"
#define PROTO_AUTH_SCHEME "Bearer "

/* Events, POSTed to ROUTE_EVENTS. */
#define EV_BACKUP_READY "backup.ready"		/* exporter -> pull-backup */
#define EV_BACKUP_ARCHIVED "backup.archived"	/* pull-backup -> exporter */
#define EV_IMPORT_READY "import.ready"		/* pull-backup -> importer */
#define EV_IMPORT_DONE "import.done"		/* importer -> pull-backup */
#define EV_BACKUP_IMPORTED "backup.imported"	/* pull-backup -> exporter */

#define ROUTE_EVENTS "/v1/events"
#define ROUTE_STATUS "/v1/status"
#define ROUTE_NOW "/v1/now"			/* exporter: start a cycle */
#define ROUTE_RUNS "/v1/runs/"			/* exporter: /v1/runs/<id> */
/* /v1/sources/<source>/versions/<version>/{manifest,file,delta} */
#define ROUTE_SOURCES "/v1/sources/"

/* Limits on what a peer may send. */
#define PROTO_MAX_EVENT (64 * 1024)
#define PROTO_MAX_BODY (64u << 20)		/* signatures */
#define PROTO_MAX_HEADERS (16 * 1024)
#define PROTO_TIMEOUT_SECS 120

#define PROTO_RETRY_MIN_SECS 1
#define PROTO_RETRY_MAX_SECS 60

#endif
