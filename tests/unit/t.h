/* SPDX-License-Identifier: MIT
 *
 * Minimal table-test helpers: CHECK records a failure with its line and
 * carries on; T_END prints the tally and sets the exit code.
 */
#ifndef UDSP_T_H
#define UDSP_T_H

#include <stdio.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond) do { \
	if (cond) t_pass++; \
	else { t_fail++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", \
				 __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (_a && _b && !strcmp(_a, _b)) t_pass++; \
	else { t_fail++; fprintf(stderr, "%s:%d: '%s' != '%s'\n", \
				 __FILE__, __LINE__, _a ? _a : "(null)", \
				 _b ? _b : "(null)"); } \
} while (0)

#define T_END() (printf("%d passed, %d failed\n", t_pass, t_fail), \
		 t_fail ? 1 : 0)

#endif
