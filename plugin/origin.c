/* SPDX-License-Identifier: MIT
 *
 * Backend origin strings -> struct udsp_origin, and back for logs.  Owns the
 * syntax and the limits (sun_path size, port range, inside-path hygiene);
 * knows nothing about connecting, which is the relay's business.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "origin.h"

const char udsp_origin_err_empty[] = "empty origin";
const char udsp_origin_err_scheme[] =
	"unknown scheme (want http:// or https://)";
const char udsp_origin_err_sock_empty[] = "empty unix socket path";
const char udsp_origin_err_sock_long[] =
	"unix socket path too long (at most 107 bytes after '+')";
const char udsp_origin_err_sock_rel[] =
	"unix socket path must be absolute ('+/...') or abstract ('+@...')";
const char udsp_origin_err_host[] = "bad or empty host";
const char udsp_origin_err_port[] = "bad port (want 1-65535)";
const char udsp_origin_err_inside[] =
	"bad inside path (must start with '/'; no whitespace, control bytes, "
	"'?', '#', '%', empty, '.' or '..' segments)";

/*
 * TCP hosts end up in o->address too, which is smaller than o->host; the
 * shorter of the two bounds a host name.
 */
#define HOST_LEN_MAX (sizeof(((struct udsp_origin *)0)->address) - 1)

static int
is_scheme_char(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/*
 * Returns the length of an RFC 3986 scheme followed by "://" at s, or 0.
 * Only such a prefix counts as a scheme, so a unix path like "+/a://b" is not
 * mistaken for one.
 */
static size_t
scheme_len(const char *s)
{
	size_t n = 0;

	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (is_scheme_char(s[n]))
		n++;

	return strncmp(s + n, "://", 3) ? 0 : n;
}

/*
 * Validate and store the inside path [p, p + len).  It is written decoded,
 * like the request path lws hands us, and percent-encoded on the way out by
 * udsp_target_build(); '%' is refused because the reader of a config cannot
 * tell whether "%20" means a space or the three bytes.
 */
static const char *
parse_inside(struct udsp_origin *o, const char *p, size_t len)
{
	size_t i, seg;

	if (!len || p[0] != '/')
		return udsp_origin_err_inside;

	/* "/in/" and "/in" name the same mount target. */
	while (len > 1 && p[len - 1] == '/')
		len--;
	if (len >= sizeof(o->inside))
		return udsp_origin_err_inside;

	seg = 1;
	for (i = 1; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)p[i] : '/';

		if (c <= 0x20 || c == 0x7f || c == '?' || c == '#' ||
		    c == '%')
			return udsp_origin_err_inside;
		if (c != '/')
			continue;
		/* segment is p[seg .. i) */
		if (len > 1 && (i == seg ||
		    (i - seg == 1 && p[seg] == '.') ||
		    (i - seg == 2 && p[seg] == '.' && p[seg + 1] == '.')))
			return udsp_origin_err_inside;
		seg = i + 1;
	}

	memcpy(o->inside, p, len);
	o->inside[len] = '\0';

	return NULL;
}

static const char *
parse_unix(struct udsp_origin *o, const char *s)
{
	const char *colon = strchr(s, ':');
	size_t plen = colon ? (size_t)(colon - s) : strlen(s);

	if (!plen)
		return udsp_origin_err_sock_empty;
	if (s[0] != '/' && s[0] != '@')
		return udsp_origin_err_sock_rel;
	if (s[0] == '@' && plen == 1)
		return udsp_origin_err_sock_empty;
	/*
	 * lws copies the text after '+' into sun_path with strncpy and then
	 * forces sun_path[107] to NUL (docs/lws-notes.md N4), abstract names
	 * included, so anything of 108 bytes or more would be cut silently.
	 */
	if (plen >= UDSP_SUN_PATH_MAX)
		return udsp_origin_err_sock_long;

	o->kind = UDSP_ORIGIN_UNIX;
	o->port = 0;
	o->host[0] = '\0';
	o->address[0] = '+';
	memcpy(o->address + 1, s, plen);
	o->address[plen + 1] = '\0';

	if (!colon)
		return parse_inside(o, "/", 1);

	return parse_inside(o, colon + 1, strlen(colon + 1));
}

static int
is_host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

static const char *
parse_tcp(struct udsp_origin *o, const char *s)
{
	const char *h = s, *p;
	size_t hlen;
	unsigned long port;
	unsigned char a6[16];

	if (*s == '[') {
		char tmp[64];

		h = s + 1;
		p = strchr(h, ']');
		if (!p)
			return udsp_origin_err_host;
		hlen = (size_t)(p - h);
		if (!hlen || hlen >= sizeof(tmp))
			return udsp_origin_err_host;
		memcpy(tmp, h, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, a6) != 1)
			return udsp_origin_err_host;
		p++;
	} else {
		p = s;
		while (is_host_char(*p))
			p++;
		hlen = (size_t)(p - s);
		if (!hlen)
			return udsp_origin_err_host;
	}

	if (*p && *p != ':' && *p != '/')
		return udsp_origin_err_host;
	if (hlen > HOST_LEN_MAX || hlen >= sizeof(o->host))
		return udsp_origin_err_host;

	o->kind = UDSP_ORIGIN_TCP;
	memcpy(o->address, h, hlen);
	o->address[hlen] = '\0';
	memcpy(o->host, h, hlen);
	o->host[hlen] = '\0';

	o->port = o->tls ? 443 : 80;
	if (*p == ':') {
		p++;
		port = 0;
		if (!isdigit((unsigned char)*p))
			return udsp_origin_err_port;
		while (isdigit((unsigned char)*p)) {
			port = port * 10 + (unsigned long)(*p++ - '0');
			if (port > 65535)
				return udsp_origin_err_port;
		}
		if (!port || (*p && *p != '/'))
			return udsp_origin_err_port;
		o->port = (uint16_t)port;
	}

	if (!*p)
		return parse_inside(o, "/", 1);

	return parse_inside(o, p, strlen(p));
}

const char *
udsp_origin_parse(struct udsp_origin *o, const char *s)
{
	size_t n;

	if (!o || !s || !*s)
		return udsp_origin_err_empty;

	memset(o, 0, sizeof(*o));

	n = scheme_len(s);
	if (n) {
		if (n == 4 && !strncasecmp(s, "http", 4))
			o->tls = 0;
		else if (n == 5 && !strncasecmp(s, "https", 5))
			o->tls = 1;
		else
			return udsp_origin_err_scheme;
		s += n + 3;
		if (!*s)
			return udsp_origin_err_empty;
	}

	if (*s == '+')
		return parse_unix(o, s + 1);

	return parse_tcp(o, s);
}

size_t
udsp_origin_format(const struct udsp_origin *o, char *buf, size_t len)
{
	const char *scheme = o->tls ? "https://" : "http://";
	char tmp[sizeof(o->address) + sizeof(o->inside) + 32];
	size_t n;

	if (o->kind == UDSP_ORIGIN_UNIX)
		n = (size_t)snprintf(tmp, sizeof(tmp), "%s%s%s%s", scheme,
				     o->address, strcmp(o->inside, "/") ?
				     ":" : "", strcmp(o->inside, "/") ?
				     o->inside : "");
	else
		n = (size_t)snprintf(tmp, sizeof(tmp),
				     strchr(o->address, ':') ?
				     "%s[%s]:%u%s" : "%s%s:%u%s", scheme,
				     o->address, (unsigned int)o->port,
				     o->inside);

	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	if (!len)
		return 0;
	if (n >= len)
		n = len - 1;
	memcpy(buf, tmp, n);
	buf[n] = '\0';

	return n;
}
