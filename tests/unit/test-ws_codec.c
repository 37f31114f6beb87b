/* SPDX-License-Identifier: MIT
 *
 * ws_codec: frames parsed whole and byte by byte give the same events;
 * every protocol error has its close code; frames built here parse back.
 */
#include "t.h"
#include "ws_codec.h"

#include <stdlib.h>
#include <string.h>

struct log {
	char	text[4096];	/* events as text: "D1:abc$ C9:x E1002" */
	size_t	n;
	size_t	data;		/* payload bytes seen */
};

static void
put(struct log *l, const char *s, size_t n)
{
	if (l->n + n < sizeof(l->text)) {
		memcpy(l->text + l->n, s, n);
		l->n += n;
		l->text[l->n] = '\0';
	}
}

static void
ev_log(struct log *l, const struct udsp_ws_ev *ev)
{
	char b[64];
	int n = 0;

	switch (ev->type) {
	case UDSP_WS_EV_DATA:
		/* runs of one message join up, however the input was cut */
		if (ev->first) {
			n = snprintf(b, sizeof(b), "D%d:", ev->op);
			put(l, b, (size_t)n);
		}
		put(l, (const char *)ev->data, ev->len);
		l->data += ev->len;
		if (ev->last)
			put(l, "$ ", 2);
		return;
	case UDSP_WS_EV_CONTROL:
		n = snprintf(b, sizeof(b), "C%d", ev->op);
		put(l, b, (size_t)n);
		if (ev->op == UDSP_WS_OP_CLOSE) {
			n = snprintf(b, sizeof(b), "/%d", ev->close_code);
			put(l, b, (size_t)n);
			put(l, ":", 1);
			put(l, (const char *)ev->reason, ev->reason_len);
		} else {
			put(l, ":", 1);
			put(l, (const char *)ev->data, ev->len);
		}
		put(l, " ", 1);
		return;
	case UDSP_WS_EV_ERROR:
		n = snprintf(b, sizeof(b), "E%d", ev->close_code);
		put(l, b, (size_t)n);
		return;
	default:
		return;
	}
}

/* Parse in pieces of at most step bytes (0: all at once). */
static void
run(const uint8_t *frames, size_t len, size_t step, int want_masked,
    uint64_t max, struct log *l)
{
	struct udsp_ws_parser p;
	struct udsp_ws_ev ev;
	uint8_t *buf = malloc(len + 1);
	size_t off = 0, end, used;

	memcpy(buf, frames, len);
	memset(l, 0, sizeof(*l));
	udsp_ws_parser_init(&p, want_masked, max);
	while (off < len) {
		end = step && len - off > step ? off + step : len;
		while (off < end) {
			used = udsp_ws_parse(&p, buf + off, end - off, &ev);
			off += used;
			ev_log(l, &ev);
			if (ev.type == UDSP_WS_EV_ERROR)
				goto out;
		}
	}
out:
	free(buf);
}

static size_t
frame(uint8_t *out, int op, int fin, const char *payload, size_t plen,
      const uint8_t *mask)
{
	size_t n = udsp_ws_frame_head(out, op, fin, plen, mask);

	memcpy(out + n, payload, plen);
	if (mask)
		udsp_ws_mask(out + n, plen, mask, 0);

	return n + plen;
}

static void
same_in_pieces(const uint8_t *f, size_t len, int want_masked, const char *exp)
{
	struct log whole, piece;
	size_t step;

	run(f, len, 0, want_masked, 0, &whole);
	CHECK_STR(whole.text, exp);
	for (step = 1; step < 20; step++) {
		run(f, len, step, want_masked, 0, &piece);
		if (strcmp(piece.text, exp)) {
			fprintf(stderr, "step %zu: '%s' != '%s'\n", step,
				piece.text, exp);
			CHECK(0);
			return;
		}
	}
}

int
main(void)
{
	static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	uint8_t f[200000], *big;
	struct log l;
	size_t n;

	/* RFC 6455 5.7 examples */
	static const uint8_t hello[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	static const uint8_t hello_m[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
					   0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const uint8_t frag[] = { 0x01, 0x03, 'H', 'e', 'l',
					0x80, 0x02, 'l', 'o' };
	static const uint8_t ping[] = { 0x89, 0x05, 'H', 'e', 'l', 'l', 'o' };

	same_in_pieces(hello, sizeof(hello), 0, "D1:Hello$ ");
	same_in_pieces(hello_m, sizeof(hello_m), 1, "D1:Hello$ ");
	same_in_pieces(frag, sizeof(frag), 0, "D1:Hello$ ");
	same_in_pieces(ping, sizeof(ping), 0, "C9:Hello ");

	/* the wrong masking for the side is a protocol error */
	run(hello_m, sizeof(hello_m), 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	run(hello, sizeof(hello), 0, 1, 0, &l);
	CHECK_STR(l.text, "E1002");

	/* control frames between fragments; empty messages; binary */
	n = frame(f, UDSP_WS_OP_BINARY, 0, "ab", 2, NULL);
	n += frame(f + n, UDSP_WS_OP_PING, 1, "p", 1, NULL);
	n += frame(f + n, UDSP_WS_OP_CONT, 0, "", 0, NULL);
	n += frame(f + n, UDSP_WS_OP_CONT, 1, "c", 1, NULL);
	n += frame(f + n, UDSP_WS_OP_TEXT, 1, "", 0, NULL);
	n += frame(f + n, UDSP_WS_OP_TEXT, 0, "", 0, NULL);
	n += frame(f + n, UDSP_WS_OP_CONT, 1, "", 0, NULL);
	n += frame(f + n, UDSP_WS_OP_PONG, 1, "", 0, NULL);
	same_in_pieces(f, n, 0, "D2:abC9:p c$ D1:$ D1:$ C10: ");

	/* close frames: code + reason, none, bad ones */
	n = frame(f, UDSP_WS_OP_CLOSE, 1, "\x0f\xa0gone", 6, NULL);
	same_in_pieces(f, n, 0, "C8/4000:gone ");
	n = frame(f, UDSP_WS_OP_CLOSE, 1, "", 0, NULL);
	same_in_pieces(f, n, 0, "C8/1005: ");
	n = frame(f, UDSP_WS_OP_CLOSE, 1, "\x03", 1, NULL);
	run(f, n, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	n = frame(f, UDSP_WS_OP_CLOSE, 1, "\x03\xed", 2, NULL);	/* 1005 */
	run(f, n, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	n = frame(f, UDSP_WS_OP_CLOSE, 1, "\x03\xe8\xff", 3, NULL);
	run(f, n, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1007");

	/* protocol errors */
	f[0] = 0xc1; f[1] = 0;				/* RSV1 */
	run(f, 2, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	f[0] = 0x83; f[1] = 0;				/* opcode 3 */
	run(f, 2, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	f[0] = 0x80; f[1] = 0;				/* lone CONT */
	run(f, 2, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	f[0] = 0x09; f[1] = 0;				/* fragmented ping */
	run(f, 2, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	f[0] = 0x89; f[1] = 126; f[2] = 0; f[3] = 126;	/* ping > 125 */
	run(f, 4, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");
	n = frame(f, UDSP_WS_OP_TEXT, 0, "a", 1, NULL);	/* TEXT in TEXT */
	n += frame(f + n, UDSP_WS_OP_TEXT, 1, "b", 1, NULL);
	run(f, n, 0, 0, 0, &l);
	CHECK_STR(l.text, "D1:aE1002");
	f[0] = 0x82; f[1] = 127;			/* 2^63 */
	memset(f + 2, 0, 8);
	f[2] = 0x80;
	run(f, 10, 0, 0, 0, &l);
	CHECK_STR(l.text, "E1002");

	/* the size limit counts a whole message, across frames */
	n = frame(f, UDSP_WS_OP_TEXT, 0, "abcd", 4, NULL);
	n += frame(f + n, UDSP_WS_OP_CONT, 1, "efgh", 4, NULL);
	run(f, n, 0, 0, 8, &l);
	CHECK_STR(l.text, "D1:abcdefgh$ ");
	run(f, n, 0, 0, 7, &l);
	CHECK_STR(l.text, "D1:abcdE1009");
	/* ...and a next message starts from zero */
	n += frame(f + n, UDSP_WS_OP_TEXT, 1, "12345678", 8, NULL);
	run(f, n, 0, 0, 8, &l);
	CHECK_STR(l.text, "D1:abcdefgh$ D1:12345678$ ");

	/* 16- and 64-bit lengths, masked, round trip */
	big = malloc(70000);
	memset(big, 'x', 70000);
	n = frame(f, UDSP_WS_OP_BINARY, 1, (const char *)big, 300, mask);
	CHECK(n == 4 + 4 + 300);
	run(f, n, 0, 1, 0, &l);
	CHECK(l.data == 300 && l.text[l.n - 2] == '$');
	n = frame(f, UDSP_WS_OP_BINARY, 1, (const char *)big, 70000, mask);
	CHECK(n == 10 + 4 + 70000);
	run(f, n, 0, 1, 0, &l);
	CHECK(l.data == 70000 && !strncmp(l.text, "D2:", 3));
	free(big);

	/* masking from an odd offset is what one pass would give */
	{
		uint8_t a[37], b[37];
		size_t i;

		for (i = 0; i < sizeof(a); i++)
			a[i] = b[i] = (uint8_t)(i * 7);
		udsp_ws_mask(a, sizeof(a), mask, 0);
		udsp_ws_mask(b, 5, mask, 0);
		udsp_ws_mask(b + 5, sizeof(b) - 5, mask, 5);
		CHECK(!memcmp(a, b, sizeof(a)));
	}

	/* close payloads */
	{
		uint8_t out[125], r[200];

		CHECK(udsp_ws_close_body(out, 1005, NULL, 0) == 0);
		CHECK(udsp_ws_close_body(out, 1000, (const uint8_t *)"ok",
					 2) == 4);
		CHECK(out[0] == 0x03 && out[1] == 0xe8 && out[2] == 'o');
		/* 100 two-byte characters: cut at 122 bytes, not 123 */
		for (n = 0; n < 200; n += 2) {
			r[n] = 0xc3;
			r[n + 1] = 0xa9;
		}
		n = udsp_ws_close_body(out, 1000, r, 200);
		CHECK(n == 2 + 122);
		CHECK(udsp_ws_utf8_ok(out + 2, n - 2));
	}

	CHECK(udsp_ws_close_code_ok(1000) && udsp_ws_close_code_ok(4999) &&
	      udsp_ws_close_code_ok(1014));
	CHECK(!udsp_ws_close_code_ok(1004) && !udsp_ws_close_code_ok(1005) &&
	      !udsp_ws_close_code_ok(1006) && !udsp_ws_close_code_ok(1015) &&
	      !udsp_ws_close_code_ok(999) && !udsp_ws_close_code_ok(5000));

	CHECK(udsp_ws_utf8_ok((const uint8_t *)"\xe2\x82\xac", 3));
	CHECK(!udsp_ws_utf8_ok((const uint8_t *)"\xe2\x82", 2));
	CHECK(!udsp_ws_utf8_ok((const uint8_t *)"\xc0\xaf", 2));
	CHECK(!udsp_ws_utf8_ok((const uint8_t *)"\xed\xa0\x80", 3));
	CHECK(!udsp_ws_utf8_ok((const uint8_t *)"\xf4\x90\x80\x80", 4));

	CHECK(udsp_ws_token_list_ok("chat", 4));
	CHECK(udsp_ws_token_list_ok("chat, v2.json ,x", 16));
	CHECK(!udsp_ws_token_list_ok("", 0));
	CHECK(!udsp_ws_token_list_ok("a,,b", 4));
	CHECK(!udsp_ws_token_list_ok("a b", 3));
	CHECK(!udsp_ws_token_list_ok("a;b", 3));
	CHECK(udsp_ws_list_has("chat, v2", 8, "v2", 2));
	CHECK(udsp_ws_list_has("chat, v2", 8, "chat", 4));
	CHECK(!udsp_ws_list_has("chat, v2", 8, "Chat", 4));
	CHECK(!udsp_ws_list_has("chat, v2", 8, "cha", 3));
	CHECK(!udsp_ws_list_has("chat, v2", 8, "", 0));

	{
		/* the plugin's LWS_UDS_PROXY_WS_SUBPROTOCOLS, item by item */
		static const char *const want[] = { "chat", "", "a b", "x", "" };
		const char *l = " chat ,, a b\t,x,", *it;
		size_t pos = 0, n, k = 0;

		while (udsp_ws_list_next(l, strlen(l), &pos, &it, &n)) {
			CHECK(k < 5 && n == strlen(want[k]) &&
			      !memcmp(it, want[k], n));
			k++;
		}
		CHECK(k == 5);
		pos = 0;
		CHECK(!udsp_ws_list_next("", 0, &pos, &it, &n));
		pos = 0;
		CHECK(udsp_ws_list_next("one", 3, &pos, &it, &n) && n == 3 &&
		      !udsp_ws_list_next("one", 3, &pos, &it, &n));
	}

	return T_END();
}
