/* SPDX-License-Identifier: MIT
 *
 * ERR_clear_error() without the work when there is nothing to clear.
 *
 * lws 4.1.6 calls ERR_clear_error() before every SSL_read(), SSL_write()
 * and SSL_get_error(), five to six times per h2 response.  OpenSSL 3.0's
 * walks all 16 slots of the thread's error queue and OPENSSL_free()s two
 * pointers in each, NULL or not: about 150 free(NULL) calls and 3,400
 * instructions of the ~95,000 an h2 response costs (callgrind).
 *
 * The daemon's executable defines the function, so the dynamic linker
 * binds lws's and libssl's calls to this one; it asks OpenSSL's own
 * ERR_peek_error() whether any error is queued and only then calls the
 * real ERR_clear_error() (the next definition, in libcrypto).  An empty
 * queue is left as it is: nothing in it can be read back, and a slot is
 * cleared again when it is next used.  The plugin in real lwsws does not
 * get this: only lws-uds-proxyd defines it.
 */
#define _GNU_SOURCE	/* RTLD_NEXT */
#include <dlfcn.h>

#include <openssl/err.h>

void
ERR_clear_error(void)
{
	static void (*real)(void);

	if (!ERR_peek_error())
		return;
	if (!real)
		real = (void (*)(void))dlsym(RTLD_NEXT, "ERR_clear_error");
	if (real)
		real();
	else
		/* cannot happen with libcrypto loaded; drain it by hand */
		while (ERR_get_error())
			;
}
