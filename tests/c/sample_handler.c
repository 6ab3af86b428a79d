/*
 * The sample handler in C, written against the kernel sample's wire format and
 * nothing else: it proves a handler in another language runs under the umd
 * manager unchanged.
 *
 * Request: a little-endian u32 offset on fd 0 (exactly 4 bytes).
 * Reply:   131072 bytes on fd 1, all zero except byte `offset`, set to 1.
 * Exit:    0 on end of input between requests, 1 on any other failure.
 *
 * Build: gcc -static -O2 -o sample_handler sample_handler.c
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define REPLY_LEN 131072

static unsigned char reply[REPLY_LEN];

/* Reads exactly len bytes; returns len, 0 on a clean end of input, -1 otherwise. */
static ssize_t read_exact(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return got == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int main(void)
{
	unsigned char req[4];
	for (;;) {
		ssize_t r = read_exact(0, req, sizeof(req));
		if (r == 0)
			return 0;
		if (r < 0)
			return 1;
		uint32_t offset = (uint32_t)req[0] | (uint32_t)req[1] << 8 |
				  (uint32_t)req[2] << 16 | (uint32_t)req[3] << 24;
		memset(reply, 0, sizeof(reply));
		if (offset < REPLY_LEN)
			reply[offset] = 1;
		if (write_all(1, reply, sizeof(reply)) < 0)
			return 1;
	}
}
