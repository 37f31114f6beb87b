/* SPDX-License-Identifier: MIT
 *
 * lws's header tables' data, from blocks of our own.
 *
 * lws 4.1.6 gives every h1 request and every h2 stream in flight its own
 * header table with a data buffer of max-http-header-data bytes (16 KiB by
 * default), malloc()ed when the request's head arrives and freed when it
 * is detached; the streams of one h2 read all get theirs before the first
 * of them reaches a protocol (docs/lws-notes.md N54).  A request's head
 * fills a few hundred bytes of it.  From the heap those buffers cost their
 * whole size in RSS all the same: the heap grows to hold them all at the
 * peak, and its pages are dirtied by whatever else is carved from them
 * later.  scripts/bench's h2 test (256 streams in flight) had 4 MiB of
 * them live at its peak.
 *
 * So the daemon hands lws an allocator (lws_set_allocator()) that serves
 * exactly those buffers from a reserved region of UDSP_AHPOOL_BLOCKS
 * blocks, reused last-freed-first, and nothing else: a block's pages
 * become resident only as far as a head has ever reached into it.  The
 * region is reserved once, and only touched pages count; past its last
 * block, and for every other allocation, it is malloc() as before.
 * lws names these buffers "ah data" (lib/roles/http/parsers.c); if a
 * version does not, nothing comes from here.  Not under AddressSanitizer,
 * whose checks on lws's use of them we would lose.  The daemon only: lwsws
 * keeps its allocator (and lws's 4 KiB default for these buffers).
 */
#define _GNU_SOURCE	/* MAP_NORESERVE */
#include <sys/mman.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "daemon.h"

#if defined(__SANITIZE_ADDRESS__)
#define UDSP_AHPOOL_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UDSP_AHPOOL_OFF 1
#endif
#endif

/* blocks in flight at once before falling back to malloc() (reserved
 * address space: this times max-http-header-data) */
#define UDSP_AHPOOL_BLOCKS	1024

#if !defined(UDSP_AHPOOL_OFF)
static struct {
	uint8_t		*base;	/* the region, or NULL */
	size_t		bsize;	/* max-http-header-data */
	size_t		stride;	/* bsize, aligned for the link */
	unsigned int	carved;	/* blocks handed out at least once */
	void		*free;	/* freed blocks: the first word links them */
} ap;

static int
ours(const void *p)
{
	return ap.base && (const uint8_t *)p >= ap.base &&
	       (const uint8_t *)p < ap.base + (size_t)UDSP_AHPOOL_BLOCKS *
							       ap.stride;
}

static void *
ap_realloc(void *ptr, size_t size, const char *reason)
{
	void *p;

	if (ptr && ours(ptr)) {
		if (size > ap.bsize) {
			/* lws never grows these: were it to, move out */
			p = malloc(size);
			if (!p)
				return NULL;
			memcpy(p, ptr, ap.bsize);
		} else if (size)
			return ptr;
		*(void **)ptr = ap.free;
		ap.free = ptr;
		return size ? p : NULL;
	}
	if (!ptr && size == ap.bsize && reason && !strcmp(reason, "ah data")) {
		if (ap.free) {
			p = ap.free;
			ap.free = *(void **)p;
			return p;
		}
		if (ap.carved < UDSP_AHPOOL_BLOCKS)
			return ap.base + (size_t)ap.carved++ * ap.stride;
	}
	if (size)
		return realloc(ptr, size);
	free(ptr);

	return NULL;
}
#endif

/* before the context: lws allocates with what it has when it is made */
void
udsp_ahpool_init(size_t header_data)
{
#if !defined(UDSP_AHPOOL_OFF)
	size_t stride = (header_data + 15) & ~(size_t)15;
	void *m;

	/* once per process; a block holds at least the free list's link */
	if (ap.base || header_data < sizeof(void *))
		return;
	m = mmap(NULL, (size_t)UDSP_AHPOOL_BLOCKS * stride,
		 PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return;	/* lws keeps malloc() */
	ap.base = m;
	ap.bsize = header_data;
	ap.stride = stride;
	lws_set_allocator(ap_realloc);
#else
	(void)header_data;
#endif
}
