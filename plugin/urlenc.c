/* SPDX-License-Identifier: MIT
 *
 * Re-encodes the decoded path and query lws gives us into the request-target
 * sent to the backend (RFC 3986).  Owns the "never climb out of the mount"
 * check on the path; it does not decode anything.
 */
#include <limits.h>
#include <string.h>

#include "urlenc.h"

static const char hex[] = "0123456789ABCDEF";

static int
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* RFC 3986 pchar minus pct-encoded, plus '/' */
static int
is_path_char(unsigned char c)
{
	return is_unreserved(c) || strchr("!$&'()*+,;=:@/", c) != NULL;
}

struct out {
	char	*p;
	size_t	len;
	size_t	size;	/* excluding the NUL */
	int	bad;
};

static void
put(struct out *o, char c)
{
	if (o->len >= o->size) {
		o->bad = 1;
		return;
	}
	o->p[o->len++] = c;
}

static void
put_enc(struct out *o, unsigned char c, int path)
{
	/* strchr() finds the terminating NUL too, so rule NUL out first */
	if (c && (path ? is_path_char(c) : is_unreserved(c))) {
		put(o, (char)c);
		return;
	}
	put(o, '%');
	put(o, hex[c >> 4]);
	put(o, hex[c & 15]);
}

/*
 * Append one decoded path piece, checking each segment as it goes.  *seg
 * carries the start of the current segment (an index into the output) across
 * the inside/remainder join so a segment split between them is still seen
 * whole; encoded bytes never form "." so comparing output bytes is enough.
 */
static void
put_path(struct out *o, const char *s, size_t *seg)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f) {
			o->bad = 1;
			return;
		}
		if (c == '/') {
			size_t n = o->len - *seg;

			if (!o->bad && ((n == 1 && o->p[*seg] == '.') ||
			    (n == 2 && o->p[*seg] == '.' &&
			     o->p[*seg + 1] == '.'))) {
				o->bad = 1;
				return;
			}
			put(o, '/');
			*seg = o->len;
			continue;
		}
		put_enc(o, c, 1);
	}
}

static void
put_query(struct out *o, const char *frag)
{
	const char *eq = strchr(frag, '=');
	const char *s;

	for (s = frag; *s && s != eq; s++)
		put_enc(o, (unsigned char)*s, 0);
	if (!eq)
		return;
	put(o, '=');
	for (s = eq + 1; *s; s++)
		put_enc(o, (unsigned char)*s, 0);
}

int
udsp_target_build(char *dst, size_t dstlen, const char *inside,
		  const char *remainder, const char * const *args, int nargs)
{
	struct out o;
	size_t seg, n;
	int i, first = 1;

	if (!dst || !dstlen)
		return -1;

	o.p = dst;
	o.len = 0;
	o.size = dstlen - 1;
	o.bad = 0;

	if (!inside || !*inside)
		inside = "/";
	if (!remainder)
		remainder = "";
	if (inside[0] != '/') {
		dst[0] = '\0';
		return -1;
	}

	seg = 1;
	put(&o, '/');
	put_path(&o, inside + 1, &seg);

	/*
	 * lws passes the URI after the mountpoint, so a mount "/" or "/app/"
	 * gives "x" for "/x" or "/app/x": supply the '/' then, or "/in" + "x"
	 * would reach a sibling "/inx" of the mounted tree.
	 */
	if (*remainder) {
		if (o.len && !o.bad && o.p[o.len - 1] == '/')
			remainder += *remainder == '/';
		else if (*remainder != '/')
			/* through put_path, so "/in/." + "x" is still seen */
			put_path(&o, "/", &seg);
		put_path(&o, remainder, &seg);
	}

	/* the last segment has no '/' after it; check it the same way */
	if (!o.bad) {
		n = o.len - seg;
		if ((n == 1 && o.p[seg] == '.') ||
		    (n == 2 && o.p[seg] == '.' && o.p[seg + 1] == '.'))
			o.bad = 1;
	}

	for (i = 0; args && i < nargs && !o.bad; i++) {
		/* "a=1&&b=2" leaves empty fragments; they carry nothing */
		if (!args[i] || !args[i][0])
			continue;
		put(&o, first ? '?' : '&');
		first = 0;
		put_query(&o, args[i]);
	}

	if (o.bad || o.len > INT_MAX) {
		dst[0] = '\0';
		return -1;
	}
	dst[o.len] = '\0';

	return (int)o.len;
}
