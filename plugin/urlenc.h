/* SPDX-License-Identifier: MIT
 *
 * Rebuild the request-target sent to the backend.  lws 4.1.6 hands the
 * plugin a percent-decoded, normalised path and a decoded query split into
 * "name=value" fragments on '&' and ';' ('+' already turned into a space),
 * so the raw target is gone; these functions re-encode it per RFC 3986 so
 * the backend sees an equivalent target (docs/lws-notes.md N10).  Pure: no
 * lws calls.
 */
#ifndef UDSP_URLENC_H
#define UDSP_URLENC_H

#include <stddef.h>

/*
 * Build "<inside><remainder>[?<args>]" into dst (NUL-terminated).
 *
 *  inside:    the origin's inside path ("/" or "/x", no trailing '/')
 *  remainder: the decoded request path below the mountpoint ("" or "/..."),
 *             as lws gives it (may be NULL)
 *  args:      decoded query fragments (each "name=value" or "name"), nargs
 *             of them (args may be NULL when nargs is 0)
 *
 * Path bytes outside RFC 3986 pchar / '/' are percent-encoded.  In each
 * query fragment, the first '=' separates name and value; every byte that
 * is not unreserved is percent-encoded in both (so a decoded '&', '=', '+',
 * ' ' or '%' inside a value stays data), and fragments are joined by '&'.
 *
 * Returns the length written, or -1 if dst is too small or if the decoded
 * path contains a "." or ".." segment, a NUL or a control character (lws
 * normalises those away; seeing one means something upstream went wrong, so
 * refuse rather than let a target climb out of the mount).
 */
int
udsp_target_build(char *dst, size_t dstlen, const char *inside,
		  const char *remainder, const char * const *args, int nargs);

#endif
