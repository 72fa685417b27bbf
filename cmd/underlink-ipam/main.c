/*
 * underlink-ipam: the CNI IPAM plugin the runtime execs, as a relay.
 *
 * A Go program pays its runtime's start (threads, heap, page faults) on every exec, and the runtime execs
 * the IPAM plugin for every ADD and DEL. This relay does no CNI logic of its own: it hands an ADD or a
 * DEL to underlink-agent over its unix socket (POST /v1/cni of cni/ipam/protocol: the CNI_* variables
 * in headers, the network config as the body), prints the agent's answer on stdout and exits with the
 * status the agent names. The agent runs the plugin's own logic (cni/ipam/plugin.Serve).
 *
 * Everything else runs the plugin process, underlink-ipam-full, installed beside this binary, with the
 * same arguments, environment and stdin: CHECK, STATUS, VERSION, GC; an ADD that probes from the pod's
 * namespace (ipam.detectIPConflict, ipam.detectGateway); a config this relay does not read plainly
 * (invalid JSON, escapes in ipam.socket: the plugin reports the error); an agent that cannot be reached
 * (the plugin's DEL records the release for the agent) or that answers without CNI-Exit (an older agent,
 * a refused caller, a call the agent leaves to the plugin process).
 *
 * Built static (gcc -static), like the Go binaries (CGO_ENABLED=0), so it runs on any node.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* api/cniconf: DefaultAgentSocket and DefaultIPAMTimeoutSeconds (cni/ipam/relay's tests check). */
#define DEFAULT_SOCKET "/run/underlink/agent.sock"
#define DEFAULT_TIMEOUT_SECONDS 20
/* cni/ipam/protocol: MaxBodyBytes and MaxHeaderBytes. */
#define MAX_BODY_BYTES (1 << 20)
#define MAX_HEADER_BYTES (64 << 10)
#define FULL_PLUGIN "underlink-ipam-full"

static char **args;

/* fail prints a CNI error as the plugin would and exits 1. */
static void fail(unsigned code, const char *msg) {
	printf("{\n    \"code\": %u,\n    \"msg\": \"", code);
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	printf("\"\n}");
	fflush(stdout);
	exit(1);
}

/* full execs underlink-ipam-full, from this binary's directory, with stdin's bytes as its stdin. */
static void full(const char *in, size_t n) {
	char self[PATH_MAX], path[PATH_MAX + sizeof FULL_PLUGIN + 1], msg[PATH_MAX + 256];
	ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
	if (l <= 0)
		fail(999, "underlink-ipam: cannot read /proc/self/exe to find underlink-ipam-full beside it");
	self[l] = 0;
	char *slash = strrchr(self, '/');
	if (!slash)
		fail(999, "underlink-ipam: /proc/self/exe is not a path");
	*slash = 0;
	snprintf(path, sizeof path, "%s/%s", self, FULL_PLUGIN);
	int fd = memfd_create("underlink-ipam-stdin", MFD_CLOEXEC);
	if (fd < 0)
		fail(999, "underlink-ipam: memfd_create for underlink-ipam-full's stdin failed");
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, in + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail(999, "underlink-ipam: writing underlink-ipam-full's stdin failed");
		off += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) != 0)
		fail(999, "underlink-ipam: passing stdin to underlink-ipam-full failed");
	args[0] = path;
	execv(path, args);
	snprintf(msg, sizeof msg, "underlink-ipam: cannot run %s (%s): install it beside underlink-ipam (underlink-cni-install --plugins=underlink-ipam-full,underlink-ipam,...)", path, strerror(errno));
	fail(999, msg);
}

/* A small JSON reader: just enough to find ipam.socket, ipam.timeoutSeconds and the probe switches. Any
 * input it does not read plainly makes the relay run the plugin process, which parses with the real
 * decoder and names the problem. */
struct cur {
	const char *p, *end;
	int bad;
};

static void ws(struct cur *c) {
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* str reads a string at c->p; *s and *n are its bytes between the quotes; *esc says it has escapes. */
static void str(struct cur *c, const char **s, size_t *n, int *esc) {
	*esc = 0;
	if (c->p >= c->end || *c->p != '"') {
		c->bad = 1;
		return;
	}
	const char *start = ++c->p;
	while (c->p < c->end && *c->p != '"') {
		if ((unsigned char)*c->p < 0x20) {
			c->bad = 1;
			return;
		}
		if (*c->p == '\\') {
			*esc = 1;
			c->p++;
		}
		c->p++;
	}
	if (c->p >= c->end) {
		c->bad = 1;
		return;
	}
	*s = start;
	*n = (size_t)(c->p - start);
	c->p++;
}

static void value(struct cur *c, int depth);

/* skip passes over any value. */
static void skip(struct cur *c, int depth) { value(c, depth); }

static int word(struct cur *c, const char *w) {
	size_t n = strlen(w);
	if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
		c->p += n;
		return 1;
	}
	return 0;
}

static void value(struct cur *c, int depth) {
	ws(c);
	if (c->bad || c->p >= c->end || depth > 64) {
		c->bad = 1;
		return;
	}
	const char *s;
	size_t n;
	int esc;
	switch (*c->p) {
	case '"':
		str(c, &s, &n, &esc);
		return;
	case '{':
	case '[': {
		char close = *c->p == '{' ? '}' : ']';
		int obj = close == '}';
		c->p++;
		ws(c);
		if (c->p < c->end && *c->p == close) {
			c->p++;
			return;
		}
		for (;;) {
			if (obj) {
				ws(c);
				str(c, &s, &n, &esc);
				ws(c);
				if (c->bad || c->p >= c->end || *c->p != ':') {
					c->bad = 1;
					return;
				}
				c->p++;
			}
			skip(c, depth + 1);
			ws(c);
			if (c->bad || c->p >= c->end) {
				c->bad = 1;
				return;
			}
			if (*c->p == ',') {
				c->p++;
				continue;
			}
			if (*c->p == close) {
				c->p++;
				return;
			}
			c->bad = 1;
			return;
		}
	}
	default:
		if (word(c, "true") || word(c, "false") || word(c, "null"))
			return;
		if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) {
			while (c->p < c->end && strchr("+-.eE0123456789", *c->p))
				c->p++;
			return;
		}
		c->bad = 1;
	}
}

struct ipam {
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	long timeout;
	int probe; /* detectIPConflict or detectGateway is not false */
};

static int key(const char *s, size_t n, const char *k) { return strlen(k) == n && memcmp(s, k, n) == 0; }

/* readIPAM reads the "ipam" object at c->p into out; 0 when it is not read plainly. */
static int readIPAM(struct cur *c, struct ipam *out) {
	ws(c);
	if (c->p >= c->end || *c->p != '{')
		return 0;
	c->p++;
	ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return 1;
	}
	for (;;) {
		const char *k, *s;
		size_t kn, n;
		int esc;
		ws(c);
		str(c, &k, &kn, &esc);
		ws(c);
		if (c->bad || esc || c->p >= c->end || *c->p != ':')
			return 0;
		c->p++;
		ws(c);
		if (key(k, kn, "socket")) {
			str(c, &s, &n, &esc);
			if (c->bad || esc || n == 0 || n >= sizeof out->socket || s[0] != '/')
				return 0;
			memcpy(out->socket, s, n);
			out->socket[n] = 0;
		} else if (key(k, kn, "timeoutSeconds")) {
			char *e;
			errno = 0;
			long v = strtol(c->p, &e, 10);
			if (e == c->p || errno || v <= 0 || v > 86400 || (e < c->end && strchr(".eE", *e)))
				return 0;
			out->timeout = v;
			c->p = e;
		} else if (key(k, kn, "detectIPConflict") || key(k, kn, "detectGateway")) {
			if (word(c, "true"))
				out->probe = 1;
			else if (!word(c, "false"))
				return 0;
		} else {
			skip(c, 1);
		}
		ws(c);
		if (c->bad || c->p >= c->end)
			return 0;
		if (*c->p == ',') {
			c->p++;
			continue;
		}
		if (*c->p == '}') {
			c->p++;
			return 1;
		}
		return 0;
	}
}

/* readConfig finds the top-level "ipam" object; 0 when the config is not read plainly or has none. The
 * last "ipam" key counts, as with Go's decoder. */
static int readConfig(const char *in, size_t n, struct ipam *out) {
	struct cur c = {in, in + n, 0};
	int found = 0;
	ws(&c);
	if (c.p >= c.end || *c.p != '{')
		return 0;
	c.p++;
	ws(&c);
	if (c.p < c.end && *c.p == '}')
		return 0;
	for (;;) {
		const char *k;
		size_t kn;
		int esc;
		ws(&c);
		str(&c, &k, &kn, &esc);
		ws(&c);
		if (c.bad || c.p >= c.end || *c.p != ':')
			return 0;
		c.p++;
		if (!esc && key(k, kn, "ipam")) {
			struct ipam fresh = {DEFAULT_SOCKET, DEFAULT_TIMEOUT_SECONDS, 0};
			if (!readIPAM(&c, &fresh))
				return 0;
			*out = fresh;
			found = 1;
		} else {
			skip(&c, 1);
		}
		ws(&c);
		if (c.bad || c.p >= c.end)
			return 0;
		if (*c.p == ',') {
			c.p++;
			continue;
		}
		if (*c.p != '}')
			return 0;
		c.p++;
		ws(&c);
		return found && c.p == c.end;
	}
}

/* plain says whether an environment value can travel as a header value. */
static int plain(const char *v) {
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* writeAll writes b to fd; a socket's peer gone is an error, not a SIGPIPE. */
static int writeAll(int fd, const char *b, size_t n, int sock) {
	while (n > 0) {
		ssize_t w = sock ? send(fd, b, n, MSG_NOSIGNAL) : write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 0;
		b += w;
		n -= (size_t)w;
	}
	return 1;
}

int main(int argc, char **argv) {
	(void)argc;
	args = argv;
	size_t cap = 64 << 10, n = 0;
	char *in = malloc(cap);
	if (!in)
		fail(999, "underlink-ipam: out of memory");
	for (;;) {
		if (n == cap) {
			if (cap >= (size_t)64 << 20)
				fail(7, "underlink-ipam: the network config on stdin is over 64 MiB");
			char *m = realloc(in, cap *= 2);
			if (!m)
				fail(999, "underlink-ipam: out of memory");
			in = m;
		}
		ssize_t r = read(0, in + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail(5, "underlink-ipam: error reading from stdin");
		if (r == 0)
			break;
		n += (size_t)r;
	}

	const char *cmd = getenv("CNI_COMMAND");
	const char *cid = getenv("CNI_CONTAINERID"), *netns = getenv("CNI_NETNS"), *ifname = getenv("CNI_IFNAME");
	const char *cargs = getenv("CNI_ARGS"), *path = getenv("CNI_PATH");
	int add = cmd && strcmp(cmd, "ADD") == 0;
	if (!cmd || (!add && strcmp(cmd, "DEL") != 0) || getenv("CNI_NETNS_OVERRIDE"))
		full(in, n);
	if (!cid || !*cid || !ifname || !*ifname || !path || !*path || (add && (!netns || !*netns)))
		full(in, n);
	if (!netns)
		netns = "";
	if (!cargs)
		cargs = "";
	if (!plain(cid) || !plain(netns) || !plain(ifname) || !plain(cargs) || !plain(path) || n > MAX_BODY_BYTES)
		full(in, n);
	struct ipam conf;
	if (!readConfig(in, n, &conf) || (add && conf.probe))
		full(in, n);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = conf.timeout};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, conf.socket);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa))
		full(in, n);

	char *head = malloc(MAX_HEADER_BYTES);
	if (!head)
		fail(999, "underlink-ipam: out of memory");
	int hn = snprintf(head, MAX_HEADER_BYTES,
	                  "POST /v1/cni HTTP/1.1\r\nHost: underlink-agent\r\nConnection: close\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\nCNI-Command: %s\r\nCNI-ContainerID: %s\r\nCNI-Netns: %s\r\nCNI-IfName: %s\r\n"
	                  "CNI-Args: %s\r\nCNI-Path: %s\r\n\r\n",
	                  n, cmd, cid, netns, ifname, cargs, path);
	if (hn < 0 || hn >= MAX_HEADER_BYTES)
		full(in, n);
	if (!writeAll(fd, head, (size_t)hn, 1) || !writeAll(fd, in, n, 1))
		full(in, n);

	size_t acap = MAX_HEADER_BYTES + MAX_BODY_BYTES, an = 0;
	char *ans = malloc(acap + 1);
	if (!ans)
		fail(999, "underlink-ipam: out of memory");
	for (;;) {
		ssize_t r = read(fd, ans + an, acap - an);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && add) {
			char msg[512];
			snprintf(msg, sizeof msg, "underlink-agent not reachable at %s: no answer within %lds (ipam.timeoutSeconds)", conf.socket, conf.timeout);
			fail(11, msg);
		}
		if (r < 0)
			full(in, n);
		if (r == 0 || (an += (size_t)r) == acap)
			break;
	}
	close(fd);
	ans[an] = 0;

	/* The answer: "HTTP/1.x 200 ...", headers with Content-Length and CNI-Exit, the body. */
	char *end = memmem(ans, an, "\r\n\r\n", 4);
	if (!end || an < 12 || memcmp(ans, "HTTP/1.", 7) != 0 || memcmp(ans + 8, " 200", 4) != 0)
		full(in, n);
	*end = 0;
	char *body = end + 4;
	long length = -1, exitCode = -1;
	for (char *line = strstr(ans, "\r\n"); line && line < end; line = strstr(line, "\r\n")) {
		line += 2;
		char *colon = strchr(line, ':');
		if (!colon)
			break;
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if ((size_t)(colon - line) == strlen("Content-Length") && strncasecmp(line, "Content-Length", 14) == 0)
			length = strtol(v, NULL, 10);
		else if ((size_t)(colon - line) == strlen("CNI-Exit") && strncasecmp(line, "CNI-Exit", 8) == 0)
			exitCode = (v[0] == '0' || v[0] == '1') && (v[1] == '\r' || v[1] == 0) ? v[0] - '0' : -1;
	}
	if (exitCode < 0 || length < 0 || (size_t)length != an - (size_t)(body - ans))
		full(in, n);
	if (!writeAll(1, body, (size_t)length, 0))
		return 1;
	return (int)exitCode;
}
