/* SPDX-License-Identifier: MIT
 *
 * Backend origin strings -> struct udsp_origin.  Pure: no lws calls, so the
 * unit tests and the fuzzer link it alone.  Accepted forms, each optionally
 * prefixed by "http://" or "https://" (default http):
 *
 *   +/run/app.sock:/inside     unix socket; ':' ends the socket path
 *   +/run/app.sock             unix socket, inside path "/"
 *   +@name:/inside             abstract-namespace unix socket
 *   127.0.0.1:8080/inside      TCP; port defaults to 80 / 443
 *   [::1]:8080/inside          TCP, IPv6 literal
 */
#ifndef UDSP_ORIGIN_H
#define UDSP_ORIGIN_H

#include <stdint.h>
#include <stddef.h>

/*
 * The plugin's lws protocol name: what a config's callback:// mount and
 * ws-protocols entry name to reach these origins.  The daemon's config
 * reader turns lwsws proxy origins into mounts on it.
 */
#define UDSP_PROTOCOL_NAME "lws-uds-proxy"
/*
 * A callback reason (past LWS_CALLBACK_USER, 1000) by which lws-uds-proxyd
 * tells the plugin on each vhost that this process drains for a reload:
 * its idle backend connections must not keep it alive.
 */
#define UDSP_CALLBACK_DRAIN (1000 + 0x5544)
/*
 * lws-uds-proxyd's mount table for the plugin: one option of this name per
 * mount of the vhost in the plugin's pvo, the value its mountpoint, its
 * options the mount's pmo when the mount is the plugin's (else none).  lws
 * tells a plugin a mount's pmo only after a ws 101 (docs/lws-notes.md
 * N47); with this the plugin finds a ws upgrade's mount before it.
 */
#define UDSP_PVO_MOUNT "udsp-mount"

/* sizeof(((struct sockaddr_un *)0)->sun_path) on Linux */
#define UDSP_SUN_PATH_MAX 108
#define UDSP_HOST_MAX 256
#define UDSP_INSIDE_MAX 1024

enum udsp_origin_kind {
	UDSP_ORIGIN_UNIX,
	UDSP_ORIGIN_TCP,
};

struct udsp_origin {
	enum udsp_origin_kind	kind;
	int			tls;	/* https:// toward the backend */
	/*
	 * What lws_client_connect_via_info() wants as .address: for unix
	 * sockets the lws form "+/path" or "+@name"; for TCP the host without
	 * brackets.
	 */
	char			address[UDSP_SUN_PATH_MAX + 2];
	uint16_t		port;	/* 0 for unix sockets */
	/*
	 * Host name for TLS SNI / certificate checks: the TCP host, empty for
	 * unix sockets.
	 */
	char			host[UDSP_HOST_MAX];
	/*
	 * Path inside the backend that the mountpoint maps to.  Always starts
	 * with '/'; never ends with '/' unless it is exactly "/".
	 */
	char			inside[UDSP_INSIDE_MAX];
};

/* Error strings returned by udsp_origin_parse(); comparable by pointer. */
extern const char udsp_origin_err_empty[];
extern const char udsp_origin_err_scheme[];
extern const char udsp_origin_err_sock_empty[];
extern const char udsp_origin_err_sock_long[];
extern const char udsp_origin_err_sock_rel[];  /* "+run/x": not absolute */
extern const char udsp_origin_err_host[];
extern const char udsp_origin_err_port[];
extern const char udsp_origin_err_inside[];

/*
 * Parse s (NUL-terminated) into *o.  Returns NULL on success, or one of the
 * udsp_origin_err_* strings, which read well in a log line after
 * "backend '<s>': ".  *o is undefined on error.
 */
const char *
udsp_origin_parse(struct udsp_origin *o, const char *s);

/*
 * Format o back into canonical origin form ("https://+/x.sock:/in") for
 * logs.  Returns the length written (truncated to len - 1, NUL-terminated).
 */
size_t
udsp_origin_format(const struct udsp_origin *o, char *buf, size_t len);

#endif
