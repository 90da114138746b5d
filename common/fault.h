/* Fault injection for the crash and disk-full tests, from the environment:
 *   UNDERSTUDY_FAULT=NAME      die (as kill -9 would leave things) at the
 *                              first pass through fault point NAME
 *   UNDERSTUDY_FAULT=NAME:N    ... at the N-th pass
 *   UNDERSTUDY_FAULT=enospc:W  writes at write point W fail with ENOSPC
 *   UNDERSTUDY_FAULT=timeout:S  the protocol's timeouts (idle, and no
 *                              progress) are S seconds instead of
 *                              PROTO_TIMEOUT_SECS (the tests' slow peers
 *                              and links)
 *   UNDERSTUDY_FAULT=hold:NAME  at the first pass through NAME, make the
 *                              file $UNDERSTUDY_FAULT_HOLD and wait until
 *                              it is removed
 * Several, separated by commas: UNDERSTUDY_FAULT=timeout:3,sync-file:2.
 * Without the variable these cost one getenv per call; a release build
 * leaves them out (meson_options.txt). */
#ifndef UNDERSTUDY_FAULT_H
#define UNDERSTUDY_FAULT_H

#include "understudy-config.h"

#if UNDERSTUDY_FAULTS
void fault_point(const char *name);
/* 1 if writes at this point must fail (errno is then ENOSPC). */
int fault_enospc(const char *write_point);
/* A protocol timeout: secs, or the one asked for. */
int fault_timeout(int secs);
#else
/* Compiled out (meson option fault_points). */
#define fault_point(name) ((void)(name))
#define fault_enospc(write_point) ((void)(write_point), 0)
#define fault_timeout(secs) (secs)
#endif

#endif
