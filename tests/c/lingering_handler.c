/*
 * The sample handler, except that it never exits by itself: at the end of its
 * input, or when a reply cannot be written, it waits forever. Only a signal ends
 * it, so it shows whether the parent-death signal reaches a handler whose
 * manager died (a handler that exits at end of input would hide a missing one).
 *
 * Request: a little-endian u32 offset on fd 0. Reply: 131072 bytes, all zero
 * except byte `offset`, set to 1.
 *
 * Build: gcc -static -O2 -o lingering_handler lingering_handler.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define REPLY_LEN 131072

static unsigned char reply[REPLY_LEN];

static void linger(void)
{
	/* ppoll with nothing to wait for and no timeout: blocks until a signal. It
	 * is on the seccomp allow-list; pause(2) is not. */
	for (;;)
		ppoll(NULL, 0, NULL, NULL);
}

int main(void)
{
	/* A manager that dies leaves a broken pipe: ignore it, keep lingering. */
	signal(SIGPIPE, SIG_IGN);
	unsigned char req[4];
	for (;;) {
		size_t got = 0;
		while (got < sizeof(req)) {
			ssize_t n = read(0, req + got, sizeof(req) - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				linger();
			got += (size_t)n;
		}
		uint32_t offset = (uint32_t)req[0] | (uint32_t)req[1] << 8 |
				  (uint32_t)req[2] << 16 | (uint32_t)req[3] << 24;
		memset(reply, 0, sizeof(reply));
		if (offset < REPLY_LEN)
			reply[offset] = 1;
		size_t done = 0;
		while (done < sizeof(reply)) {
			ssize_t n = write(1, reply + done, sizeof(reply) - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				linger();
			done += (size_t)n;
		}
	}
}
