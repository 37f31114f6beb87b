/* SPDX-License-Identifier: MIT
 *
 * libFuzzer driver for the ws frame parser.  The first byte picks the
 * side (masked or not), a size limit and how the rest is cut into feeds.
 * Invariants: progress on every call, events within their input, message
 * payload never past the limit, a run's flags consistent with the message
 * state, the same events whatever the cuts, and every error sticky.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_codec.h"

#define ASSERT(x) do { if (!(x)) abort(); } while (0)

struct sum {
	uint64_t	h;	/* hash of the event stream, cut-independent */
	uint64_t	data;
	int		err;
};

static void
mix(struct sum *s, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		s->h = (s->h ^ *b++) * 0x100000001b3ull;
}

static void
run(const uint8_t *in, size_t len, size_t step, int masked, uint64_t max,
    struct sum *s)
{
	struct udsp_ws_parser p;
	struct udsp_ws_ev ev;
	uint8_t *buf = malloc(len ? len : 1);
	size_t off = 0, end, used;
	uint64_t msg = 0;
	int open = 0, op = 0, tag;

	memcpy(buf, in, len);
	memset(s, 0, sizeof(*s));
	s->h = 0xcbf29ce484222325ull;
	udsp_ws_parser_init(&p, masked, max);
	while (off < len) {
		end = step && len - off > step ? off + step : len;
		while (off < end) {
			used = udsp_ws_parse(&p, buf + off, end - off, &ev);
			ASSERT(used <= end - off);
			switch (ev.type) {
			case UDSP_WS_EV_NONE:
				ASSERT(used == end - off);
				break;
			case UDSP_WS_EV_DATA:
				ASSERT(ev.data >= buf + off &&
				       ev.data + ev.len <= buf + off + used);
				ASSERT(ev.op == 1 || ev.op == 2);
				ASSERT(ev.first == !open);
				if (ev.first) {
					op = ev.op;
					msg = 0;
					tag = 'M' + op;
					mix(s, &tag, sizeof(tag));
				}
				ASSERT(ev.op == op);
				msg += ev.len;
				ASSERT(!max || msg <= max);
				s->data += ev.len;
				mix(s, ev.data, ev.len);
				open = !ev.last;
				if (ev.last) {
					tag = '$';
					mix(s, &tag, sizeof(tag));
				}
				break;
			case UDSP_WS_EV_CONTROL:
				ASSERT(ev.op == 8 || ev.op == 9 || ev.op == 10);
				ASSERT(ev.len <= 125);
				tag = 'C' + ev.op;
				mix(s, &tag, sizeof(tag));
				mix(s, ev.data, ev.len);
				if (ev.op == 8) {
					ASSERT(ev.close_code == 1005 ||
					       udsp_ws_close_code_ok(
							ev.close_code));
					ASSERT(udsp_ws_utf8_ok(ev.reason,
							       ev.reason_len));
				}
				break;
			case UDSP_WS_EV_ERROR:
				ASSERT(ev.close_code == 1002 ||
				       ev.close_code == 1007 ||
				       ev.close_code == 1009);
				s->err = ev.close_code;
				/* sticky */
				ASSERT(udsp_ws_parse(&p, buf + off, end - off,
						     &ev) == 0);
				ASSERT(ev.type == UDSP_WS_EV_ERROR &&
				       ev.close_code == s->err);
				goto out;
			}
			/* no progress without an event would loop forever */
			ASSERT(used || ev.type != UDSP_WS_EV_NONE);
			off += used;
		}
	}
out:
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sum a, b;
	uint64_t max;
	size_t step;

	if (size < 1)
		return 0;
	max = (data[0] & 0x70) ? (uint64_t)(data[0] & 0x70) * 4 : 0;
	step = (data[0] & 0x0f) + 1;
	run(data + 1, size - 1, 0, data[0] >> 7, max, &a);
	run(data + 1, size - 1, step, data[0] >> 7, max, &b);
	ASSERT(a.h == b.h && a.data == b.data && a.err == b.err);

	return 0;
}
