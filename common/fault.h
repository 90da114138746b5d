/* Named fault points, for the crash tests: when UNDERSTUDY_FAULT names a
 * point, the process dies there at once, as a kill -9 would leave it. */
#ifndef UNDERSTUDY_FAULT_H
#define UNDERSTUDY_FAULT_H

void fault_point(const char *name);

#endif
