/*
 * A compromised handler in C, for the sandbox tests: handlers not built on the
 * umd-handler runtime get their seccomp filter from the loader, just before exec.
 *
 * Request: 4 bytes naming an attack. Reply: 4 bytes saying what happened.
 *   "ping" -> "pong"
 *   "open" -> open("/etc/passwd"): "EACC" when refused with EACCES (the loader's
 *             errno filter), "OPEN" when it worked, "ERR?" for any other error
 *   "sock" -> socket(AF_INET): off the allow-list, so the kernel kills the process
 *             (SIGSYS); "SOCK" if it ever returns
 *   "exec" -> execve("/bin/sh"): off the allow-list, killed; "EXEC" if it returns
 * Anything else -> "????". Exit: 0 on end of input between requests.
 *
 * Build: gcc -static -O2 -o malicious_handler malicious_handler.c
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

static int read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return got == 0 && n == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

static const char *attack(const char *req)
{
	if (memcmp(req, "ping", 4) == 0)
		return "pong";
	if (memcmp(req, "open", 4) == 0) {
		int fd = open("/etc/passwd", O_RDONLY);
		if (fd >= 0)
			return "OPEN";
		return errno == EACCES ? "EACC" : "ERR?";
	}
	if (memcmp(req, "sock", 4) == 0) {
		socket(AF_INET, SOCK_STREAM, 0);
		return "SOCK";
	}
	if (memcmp(req, "exec", 4) == 0) {
		char *argv[] = { "/bin/sh", 0 };
		char *envp[] = { 0 };
		execve("/bin/sh", argv, envp);
		return "EXEC";
	}
	return "????";
}

int main(void)
{
	char req[4];
	for (;;) {
		int r = read_exact(0, req, sizeof req);
		if (r == 0)
			return 0;
		if (r < 0)
			return 1;
		if (write(1, attack(req), 4) != 4)
			return 1;
	}
}
