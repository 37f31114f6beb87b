/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for the daemon's config reader (host/conf*.c): the
 * input is CONFDIR/conf, read by udsp_hconf_load() with no lws context.
 * No crash, no leak, and an accepted config is coherent:
 * every vhost has a name, every string and list it hands to lws is intact.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static char confdir[64];
static char conffile[80];

/*
 * Linked with -Wl,--wrap=open: the reader opens "access-log" paths with
 * O_CREAT to check them, and fuzzed paths must not litter the file system.
 * Only the config file itself may be opened; anything else is refused, as
 * an unwritable path would be (the reader reports it and carries on).
 */
int __real_open(const char *path, int flags, ...);

int
__wrap_open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	if (flags & O_CREAT) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (strcmp(path, conffile)) {
		errno = EACCES;
		return -1;
	}

	return __real_open(path, flags, mode);
}

static void
cleanup(void)
{
	unlink(conffile);
	rmdir(confdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	/*
	 * The reader logs every problem; at fuzzing rates that is noise.
	 * UDSP_FUZZ_CONF_LOG=1 shows it (replaying one input).
	 */
	if (!getenv("UDSP_FUZZ_CONF_LOG"))
		lws_set_log_level(0, NULL);

	snprintf(confdir, sizeof(confdir), "%s/udsp-fuzz-conf.XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (!mkdtemp(confdir)) {
		perror("fuzz-conf: mkdtemp");
		abort();
	}
	snprintf(conffile, sizeof(conffile), "%s/conf", confdir);
	if (atexit(cleanup)) {
		perror("fuzz-conf: atexit");
		abort();
	}

	return 0;
}

static void
check_pvos(const struct lws_protocol_vhost_options *p, int depth)
{
	if (depth > 8)
		abort();
	for (; p; p = p->next) {
		if (!p->name || !p->value)
			abort();
		/* ASan: both must be whole strings in live memory */
		(void)strlen(p->name);
		(void)strlen(p->value);
		check_pvos(p->options, depth + 1);
	}
}

static void
check_conf(const struct udsp_hconf *hc)
{
	const struct lws_http_mount *m;
	const struct udsp_hc_vhost *v;
	const struct udsp_hc_need *nd;
	int n = 0, i;

	for (i = 0; i < hc->count_plugin_dirs; i++)
		(void)strlen(hc->plugin_dirs[i]);
	if (hc->plugin_dirs[hc->count_plugin_dirs])
		abort();
	check_pvos(hc->reject_service_keywords, 0);

	for (v = hc->vhosts; v; v = v->next) {
		n++;
		if (!v->info.vhost_name || !v->file)
			abort();
		(void)strlen(v->info.vhost_name);
		if (v->info.iface)
			(void)strlen(v->info.iface);
		check_pvos(v->info.pvo, 0);
		check_pvos(v->info.headers, 0);
		for (m = v->info.mounts; m; m = m->mount_next) {
			if (!m->mountpoint || m->mountpoint[0] != '/' ||
			    strlen(m->mountpoint) != m->mountpoint_len ||
			    !m->origin)
				abort();
			(void)strlen(m->origin);
			if (m->protocol)
				(void)strlen(m->protocol);
			check_pvos(m->cgienv, 0);
			check_pvos(m->extra_mimetypes, 0);
			check_pvos(m->interpret, 0);
		}
		for (nd = v->needs; nd; nd = nd->next)
			if (!nd->name || !nd->why || !strlen(nd->why))
				abort();
	}
	if (n != hc->count_vhosts || !n)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct udsp_hconf hc;
	ssize_t w;
	size_t got = 0;
	int fd;

	fd = __real_open(conffile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			 0600);
	if (fd < 0) {
		perror("fuzz-conf: open");
		abort();
	}
	while (got < size) {
		w = write(fd, data + got, size - got);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("fuzz-conf: write");
			abort();
		}
		got += (size_t)w;
	}
	if (close(fd)) {
		perror("fuzz-conf: close");
		abort();
	}

	if (!udsp_hconf_load(&hc, confdir))
		check_conf(&hc);
	udsp_hconf_destroy(&hc);

	return 0;
}
