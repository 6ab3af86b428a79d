/*
 * A lying sample handler in C: right for offset 0 (so it passes the manager's
 * post_start check), wrong for every other offset — it sets the byte after the
 * requested one. The manager must reject the reply (CLI exit status 1).
 *
 * Build: gcc -static -O2 -o wrong_byte_handler wrong_byte_handler.c
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define REPLY_LEN 131072

static unsigned char reply[REPLY_LEN];

int main(void)
{
	unsigned char req[4];
	for (;;) {
		size_t got = 0;
		while (got < sizeof(req)) {
			ssize_t n = read(0, req + got, sizeof(req) - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return got == 0 && n == 0 ? 0 : 1;
			got += (size_t)n;
		}
		uint32_t offset = (uint32_t)req[0] | (uint32_t)req[1] << 8 |
				  (uint32_t)req[2] << 16 | (uint32_t)req[3] << 24;
		memset(reply, 0, sizeof(reply));
		if (offset == 0)
			reply[0] = 1;
		else
			reply[(offset + 1) % REPLY_LEN] = 1;
		size_t done = 0;
		while (done < sizeof(reply)) {
			ssize_t n = write(1, reply + done, sizeof(reply) - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 1;
			done += (size_t)n;
		}
	}
}
