/*
 * TEST DOUBLE of libkrun.so: the krun_* symbols the Go binding uses, with
 * libkrun's C signatures, doing nothing but record each call. The tests
 * compile it with gcc into a shared library (libkrun/krundouble) and load it
 * through krun.Open, so the real purego path (dlopen, dlsym, argument
 * passing) is exercised.
 *
 *   KRUN_DOUBLE_LOG   file that gets one line per call, every argument
 *   KRUN_DOUBLE_FAIL  name of one function that returns -EINVAL
 *   KRUN_DOUBLE_EXIT  krun_start_enter exits the process with this status,
 *                     as libkrun does when the guest's workload ends
 *   KRUN_DOUBLE_VERSION  the libkrun release whose rules it applies ("1.17";
 *                     default 1.19): the rules that changed in 1.15 and 1.18
 *   KRUN_DOUBLE_MAX_VCPUS  what krun_get_max_vcpus answers (default 1024)
 *
 * It is as strict as libkrun v1.19.0's src/libkrun/src/lib.rs: each refusal
 * below cites the line it comes from ("lib.rs:N" is v1.19.0; older releases
 * are named). Contexts are numbered from 0 and unknown ones are ENOENT.
 *
 * The tests hide single symbols with a linker version script to play an old
 * libkrun (krundouble.HideBefore lists what a release lacks).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char line[65536];
static size_t used;

static void add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	va_end(ap);
	if (n > 0)
		used += (size_t)n < sizeof(line) - used ? (size_t)n : sizeof(line) - used - 1;
}

static void add_str(const char *key, const char *s)
{
	if (s == NULL)
		add(" %s=NULL", key);
	else
		add(" %s=\"%s\"", key, s);
}

static void add_array(const char *key, const char *const a[])
{
	if (a == NULL) {
		add(" %s=NULL", key);
		return;
	}
	add(" %s=[", key);
	for (int i = 0; a[i] != NULL; i++)
		add("%s\"%s\"", i ? "," : "", a[i]);
	add("]");
}

static void flush(void)
{
	const char *path = getenv("KRUN_DOUBLE_LOG");
	add("\n");
	if (path != NULL) {
		FILE *f = fopen(path, "a");
		if (f != NULL) {
			fputs(line, f);
			fclose(f);
		}
	}
	used = 0;
}

static void record(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	used = n > 0 ? (size_t)n : 0;
}

/* result logs the call and returns KRUN_DOUBLE_FAIL's -EINVAL, else the
 * rule's verdict (ret). */
static int32_t result(const char *fn, int32_t ret)
{
	const char *fail = getenv("KRUN_DOUBLE_FAIL");
	flush();
	if (fail != NULL && strcmp(fail, fn) == 0)
		return -EINVAL;
	return ret;
}

/* minor is the emulated release, 1.minor. */
static int minor(void)
{
	const char *v = getenv("KRUN_DOUBLE_VERSION");
	int major = 1, m = 19;
	if (v != NULL && *v != '\0' && sscanf(v, "%d.%d", &major, &m) != 2) {
		fprintf(stderr, "krun double: KRUN_DOUBLE_VERSION=%s is not 1.N\n", v);
		abort();
	}
	return m;
}

/* What libkrun keeps per context, as much as its rules need. */
#define MAX_CTX 64
#define MAX_FS 16
static struct ctx {
	bool used;
	int net_index;		/* lib.rs:168, one per net device */
	bool vsock_disabled;	/* VsockConfig::Disabled, lib.rs:2611 */
	bool vsock_explicit;	/* VsockConfig::Explicit, lib.rs:2637 */
	int consoles;		/* vmr.virtio_consoles.len() */
	bool multiport[16];	/* VirtioConsoleConfigMode::Explicit */
	int nfs;
	char fs[MAX_FS][64];	/* virtiofs tags, "/dev/root" for the root */
} ctxs[MAX_CTX];
static int next_id;		/* CTX_IDS starts at 0, lib.rs:458, 557 */
static bool logger_set;

/* get is CTX_MAP.entry(ctx_id): Vacant is ENOENT, in every call. */
static struct ctx *get(uint32_t id)
{
	if (id >= MAX_CTX || !ctxs[id].used)
		return NULL;
	return &ctxs[id];
}

static void add_fs(struct ctx *c, const char *tag)
{
	if (c->nfs < MAX_FS)
		snprintf(c->fs[c->nfs++], sizeof(c->fs[0]), "%s", tag);
}

/* crash is what libkrun does where it dereferences NULL or panics: the
 * process dies (a Rust panic cannot unwind out of extern "C"). */
static void crash(const char *why)
{
	flush();
	fprintf(stderr, "krun double: libkrun would crash here: %s\n", why);
	abort();
}

/* logger is env_logger's init: a second one panics (lib.rs:474-476, 536). */
static void logger(void)
{
	if (logger_set)
		crash("the logger is initialized twice (env_logger init panics)");
	logger_set = true;
}

int32_t krun_set_log_level(uint32_t level)
{
	record("krun_set_log_level level=%u", level);
	logger();
	return result(__func__, 0);
}

int32_t krun_init_log(int target_fd, uint32_t level, uint32_t style, uint32_t options)
{
	record("krun_init_log fd=%d level=%u style=%u options=%u", target_fd, level, style, options);
	/* lib.rs:502-504: below -1 and stdin are EINVAL; 509-514 style; 516-520 options */
	if (target_fd < -1 || target_fd == 0 || style > 2 || options > 1)
		return result(__func__, -EINVAL);
	logger();
	return result(__func__, 0);
}

int32_t krun_create_ctx(void)
{
	record("krun_create_ctx");
	if (next_id >= MAX_CTX)
		crash("context IDs exhausted (the double's table)");
	ctxs[next_id] = (struct ctx){ .used = true };
	return result(__func__, next_id++); /* lib.rs:557: 0, 1, 2… */
}

int32_t krun_free_ctx(uint32_t ctx_id)
{
	record("krun_free_ctx ctx=%u", ctx_id);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:571 */
	c->used = false;
	return result(__func__, 0);
}

int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib)
{
	record("krun_set_vm_config ctx=%u vcpus=%u ram_mib=%u", ctx_id, num_vcpus, ram_mib);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:598 */
	/* lib.rs:594-596 on vmm/src/resources.rs v1.19.0:217-223: 0 vCPUs, 0 MiB */
	if (num_vcpus == 0 || ram_mib == 0)
		return result(__func__, -EINVAL);
	return result(__func__, 0);
}

int32_t krun_check_nested_virt(void)
{
	record("krun_check_nested_virt");
	return result(__func__, 1);
}

int32_t krun_set_nested_virt(uint32_t ctx_id, bool enabled)
{
	record("krun_set_nested_virt ctx=%u enabled=%d", ctx_id, enabled);
	/* v1.17.0 lib.rs:1821-1823: enabled is EINVAL off macOS; 1.18 dropped it */
	if (enabled && minor() < 18)
		return result(__func__, -EINVAL);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1898 */
	return result(__func__, 0);
}

int32_t krun_set_root(uint32_t ctx_id, const char *root_path)
{
	record("krun_set_root ctx=%u", ctx_id);
	add_str("path", root_path);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:636 */
	add_fs(c, "/dev/root"); /* lib.rs:613 */
	return result(__func__, 0);
}

int32_t krun_add_disk(uint32_t ctx_id, const char *block_id, const char *disk_path, bool read_only)
{
	record("krun_add_disk ctx=%u", ctx_id);
	add_str("block_id", block_id);
	add_str("path", disk_path);
	add(" read_only=%d", read_only);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:772 */
	return result(__func__, 0);
}

int32_t krun_add_virtiofs(uint32_t ctx_id, const char *c_tag, const char *c_path)
{
	record("krun_add_virtiofs ctx=%u", ctx_id);
	add_str("tag", c_tag);
	add_str("path", c_path);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:720 via krun_add_virtiofs3 */
	add_fs(c, c_tag);
	return result(__func__, 0);
}

int32_t krun_add_virtiofs3(uint32_t ctx_id, const char *c_tag, const char *c_path,
			   uint64_t shm_size, bool read_only)
{
	record("krun_add_virtiofs3 ctx=%u", ctx_id);
	add_str("tag", c_tag);
	add_str("path", c_path);
	add(" shm_size=%llu read_only=%d", (unsigned long long)shm_size, read_only);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:720 */
	add_fs(c, c_tag);
	return result(__func__, 0);
}

#define NET_FLAG_DHCP_CLIENT (1u << 1) /* lib.rs:949 */
/* NET_ALL_FEATURES, lib.rs:984-991: CSUM, GUEST_CSUM/TSO4/TSO6/UFO, HOST_TSO4/TSO6/UFO */
#define NET_ALL_FEATURES ((1u << 0) | (1u << 1) | (1u << 7) | (1u << 8) | (1u << 10) | \
			  (1u << 11) | (1u << 12) | (1u << 14))

int32_t krun_add_net_unixstream(uint32_t ctx_id, const char *c_path, int fd,
				uint8_t *const c_mac, uint32_t features, uint32_t flags)
{
	record("krun_add_net_unixstream ctx=%u", ctx_id);
	add_str("path", c_path);
	add(" fd=%d", fd);
	if (c_mac == NULL)
		add(" mac=NULL");
	else
		add(" mac=%02x:%02x:%02x:%02x:%02x:%02x", c_mac[0], c_mac[1], c_mac[2],
		    c_mac[3], c_mac[4], c_mac[5]);
	add(" features=%u flags=%u", features, flags);
	/* lib.rs:1013-1018: exactly one of path and fd */
	if ((fd >= 0) == (c_path != NULL))
		return result(__func__, -EINVAL);
	if (c_mac == NULL)
		crash("krun_add_net_unixstream reads 6 bytes at a NULL MAC (lib.rs:1025)");
	/* lib.rs:1030: only NET_FLAG_DHCP_CLIENT, which 1.18 added: v1.17.0
	 * lib.rs:969-972 refuses any flag on a unixstream */
	if ((flags & ~NET_FLAG_DHCP_CLIENT) != 0 || (flags != 0 && minor() < 18))
		return result(__func__, -EINVAL);
	if ((features & ~NET_ALL_FEATURES) != 0) /* lib.rs:1035 */
		return result(__func__, -EINVAL);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1047 */
	c->net_index++; /* create_virtio_net, lib.rs:2061 */
	return result(__func__, 0);
}

static bool port(const char *s, size_t n, unsigned *out)
{
	if (n == 0 || n > 5)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return v <= 65535; /* u16::parse */
}

int32_t krun_set_port_map(uint32_t ctx_id, const char *const port_map[])
{
	record("krun_set_port_map ctx=%u", ctx_id);
	add_array("port_map", port_map);
	if (port_map == NULL) /* lib.rs:1251: slice::from_raw_parts(NULL) */
		crash("krun_set_port_map reads a NULL port map (lib.rs:1251)");
	unsigned hosts[4096], guests[4096];
	int n = 0;
	for (; port_map[n] != NULL && n < 4096; n++) {
		const char *s = port_map[n], *colon = strchr(s, ':');
		/* lib.rs:1260-1271: exactly "HOST:GUEST", both u16 */
		if (colon == NULL || strchr(colon + 1, ':') != NULL ||
		    !port(s, (size_t)(colon - s), &hosts[n]) ||
		    !port(colon + 1, strlen(colon + 1), &guests[n]))
			return result(__func__, -EINVAL);
		/* lib.rs:1273-1279: a guest port or a host port twice */
		for (int i = 0; i < n; i++)
			if (guests[i] == guests[n] || hosts[i] == hosts[n])
				return result(__func__, -EINVAL);
	}
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1295 */
	if (c->vsock_disabled && !c->vsock_explicit)
		return result(__func__, -ENODEV); /* lib.rs:1288-1290 */
	/* lib.rs:1291 on set_port_map, lib.rs:318: not next to a net device
	 * (1.15 on; before, krun_add_net_unixstream did not exist) */
	if (c->net_index != 0 && minor() >= 15)
		return result(__func__, -EINVAL);
	return result(__func__, 0);
}

int32_t krun_add_vsock_port2(uint32_t ctx_id, uint32_t port, const char *c_filepath, bool listen)
{
	record("krun_add_vsock_port2 ctx=%u port=%u", ctx_id, port);
	add_str("path", c_filepath);
	add(" listen=%d", listen);
	struct stat st;
	/* lib.rs:1504-1509: the host side listens on a socket it creates */
	if (listen && lstat(c_filepath, &st) == 0)
		return result(__func__, -EEXIST);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1520 */
	if (c->vsock_disabled && !c->vsock_explicit)
		return result(__func__, -ENODEV); /* lib.rs:1515-1517 */
	return result(__func__, 0);
}

int32_t krun_disable_implicit_console(uint32_t ctx_id)
{
	record("krun_disable_implicit_console ctx=%u", ctx_id);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2600 */
	return result(__func__, 0);
}

int32_t krun_add_virtio_console_default(uint32_t ctx_id, int input_fd, int output_fd, int err_fd)
{
	record("krun_add_virtio_console_default ctx=%u in=%d out=%d err=%d",
	       ctx_id, input_fd, output_fd, err_fd);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2667 */
	c->consoles++;
	return result(__func__, 0);
}

int32_t krun_set_workdir(uint32_t ctx_id, const char *workdir_path)
{
	record("krun_set_workdir ctx=%u", ctx_id);
	add_str("path", workdir_path);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1347 */
	return result(__func__, 0);
}

int32_t krun_set_exec(uint32_t ctx_id, const char *exec_path,
		      const char *const argv[], const char *const envp[])
{
	record("krun_set_exec ctx=%u", ctx_id);
	add_str("path", exec_path);
	add_array("argv", argv);
	add_array("env", envp);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1420 */
	return result(__func__, 0);
}

int32_t krun_set_env(uint32_t ctx_id, const char *const envp[])
{
	record("krun_set_env ctx=%u", ctx_id);
	add_array("env", envp);
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1450 */
	return result(__func__, 0);
}

int32_t krun_set_rlimits(uint32_t ctx_id, const char *const rlimits[])
{
	record("krun_set_rlimits ctx=%u", ctx_id);
	add_array("rlimits", rlimits);
	if (rlimits == NULL)
		return result(__func__, -EINVAL); /* lib.rs:1304-1305 */
	if (get(ctx_id) == NULL)
		return result(__func__, -ENOENT); /* lib.rs:1329 */
	return result(__func__, 0);
}

int krun_has_feature(uint64_t feature)
{
	record("krun_has_feature feature=%llu", (unsigned long long)feature);
	if (feature > 11) /* KRUN_FEATURE_INIT_BLOB, lib.rs:1944, 1960 */
		return result(__func__, -EINVAL);
	/* built with NET and BLK, as distributions build it */
	return result(__func__, feature == 0 || feature == 1);
}

int32_t krun_get_max_vcpus(void)
{
	const char *max = getenv("KRUN_DOUBLE_MAX_VCPUS");
	record("krun_get_max_vcpus");
	return result(__func__, max != NULL && *max != '\0' ? atoi(max) : 1024);
}

int32_t krun_disable_implicit_vsock(uint32_t ctx_id)
{
	record("krun_disable_implicit_vsock ctx=%u", ctx_id);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2613 */
	c->vsock_disabled = true;
	c->vsock_explicit = false; /* lib.rs:2611: Disabled, whatever it was */
	return result(__func__, 0);
}

int32_t krun_add_vsock(uint32_t ctx_id, uint32_t tsi_features)
{
	record("krun_add_vsock ctx=%u tsi_features=%u", ctx_id, tsi_features);
	if (tsi_features > 3) /* TsiFlags::from_bits, lib.rs:2621-2624 */
		return result(__func__, -EINVAL);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2639 */
	if (!c->vsock_disabled || c->vsock_explicit)
		return result(__func__, -EEXIST); /* lib.rs:2634-2636 */
	c->vsock_explicit = true;
	return result(__func__, 0);
}

int32_t krun_add_virtio_console_multiport(uint32_t ctx_id)
{
	record("krun_add_virtio_console_multiport ctx=%u", ctx_id);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2687 */
	int id = c->consoles++; /* lib.rs:2679: the console's index */
	if (id < 16)
		c->multiport[id] = true;
	return result(__func__, id);
}

int32_t krun_add_console_port_inout(uint32_t ctx_id, uint32_t console_id, const char *name,
				    int input_fd, int output_fd)
{
	record("krun_add_console_port_inout ctx=%u console=%u", ctx_id, console_id);
	add_str("name", name);
	add(" in=%d out=%d", input_fd, output_fd);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2769 */
	/* lib.rs:2757-2767: only on a multiport console */
	if (console_id >= 16 || !c->multiport[console_id])
		return result(__func__, -EINVAL);
	return result(__func__, 0);
}

int32_t krun_fs_add_overlay_file(uint32_t ctx_id, const char *c_fs_tag, const char *c_path,
				 const uint8_t *data, size_t data_len, uint32_t mode, bool one_shot)
{
	record("krun_fs_add_overlay_file ctx=%u", ctx_id);
	add_str("tag", c_fs_tag);
	add_str("path", c_path);
	add(" len=%zu mode=%o one_shot=%d", data_len, mode, one_shot);
	if (c_fs_tag == NULL || c_path == NULL) /* lib.rs:2491-2493 */
		return result(__func__, -EINVAL);
	if (data_len > 0 && data == NULL) /* lib.rs:2506-2512 */
		return result(__func__, -EINVAL);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2474 */
	for (int i = 0; i < c->nfs; i++)
		if (strcmp(c->fs[i], c_fs_tag) == 0)
			return result(__func__, 0);
	return result(__func__, -ENOENT); /* lib.rs:2463-2466: no share with that tag */
}

int32_t krun_start_enter(uint32_t ctx_id)
{
	const char *status = getenv("KRUN_DOUBLE_EXIT");
	record("krun_start_enter ctx=%u", ctx_id);
	struct ctx *c = get(ctx_id);
	if (c == NULL)
		return result(__func__, -ENOENT); /* lib.rs:2835-2838 */
	c->used = false; /* lib.rs:2835: CTX_MAP.remove */
	if (status != NULL) {
		flush();
		_exit(atoi(status));
	}
	return result(__func__, 0);
}
