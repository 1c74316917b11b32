/*
 * TEST DOUBLE of libkrun.so: the krun_* symbols the Go binding uses, with
 * libkrun's C signatures, doing nothing but record each call. The tests
 * compile it with gcc into a shared library (krun/krundouble) and load it
 * through krun.Open, so the real purego path (dlopen, dlsym, argument
 * passing) is exercised.
 *
 *   KRUN_DOUBLE_LOG   file that gets one line per call, every argument
 *   KRUN_DOUBLE_FAIL  name of one function that returns -EINVAL
 *   KRUN_DOUBLE_EXIT  krun_start_enter exits the process with this status,
 *                     as libkrun does when the guest's workload ends
 *
 * The tests hide single symbols with a linker version script to play an old
 * libkrun.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int32_t result(const char *fn, int32_t ok)
{
	const char *fail = getenv("KRUN_DOUBLE_FAIL");
	flush();
	if (fail != NULL && strcmp(fail, fn) == 0)
		return -EINVAL;
	return ok;
}

int32_t krun_set_log_level(uint32_t level)
{
	record("krun_set_log_level level=%u", level);
	return result(__func__, 0);
}

int32_t krun_init_log(int target_fd, uint32_t level, uint32_t style, uint32_t options)
{
	record("krun_init_log fd=%d level=%u style=%u options=%u", target_fd, level, style, options);
	return result(__func__, 0);
}

int32_t krun_create_ctx(void)
{
	record("krun_create_ctx");
	return result(__func__, 7); /* not 0, so a lost ctx id shows */
}

int32_t krun_free_ctx(uint32_t ctx_id)
{
	record("krun_free_ctx ctx=%u", ctx_id);
	return result(__func__, 0);
}

int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib)
{
	record("krun_set_vm_config ctx=%u vcpus=%u ram_mib=%u", ctx_id, num_vcpus, ram_mib);
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
	return result(__func__, 0);
}

int32_t krun_set_root(uint32_t ctx_id, const char *root_path)
{
	record("krun_set_root ctx=%u", ctx_id);
	add_str("path", root_path);
	return result(__func__, 0);
}

int32_t krun_add_disk(uint32_t ctx_id, const char *block_id, const char *disk_path, bool read_only)
{
	record("krun_add_disk ctx=%u", ctx_id);
	add_str("block_id", block_id);
	add_str("path", disk_path);
	add(" read_only=%d", read_only);
	return result(__func__, 0);
}

int32_t krun_add_virtiofs(uint32_t ctx_id, const char *c_tag, const char *c_path)
{
	record("krun_add_virtiofs ctx=%u", ctx_id);
	add_str("tag", c_tag);
	add_str("path", c_path);
	return result(__func__, 0);
}

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
	return result(__func__, 0);
}

int32_t krun_set_port_map(uint32_t ctx_id, const char *const port_map[])
{
	record("krun_set_port_map ctx=%u", ctx_id);
	add_array("port_map", port_map);
	return result(__func__, 0);
}

int32_t krun_add_vsock_port2(uint32_t ctx_id, uint32_t port, const char *c_filepath, bool listen)
{
	record("krun_add_vsock_port2 ctx=%u port=%u", ctx_id, port);
	add_str("path", c_filepath);
	add(" listen=%d", listen);
	return result(__func__, 0);
}

int32_t krun_disable_implicit_console(uint32_t ctx_id)
{
	record("krun_disable_implicit_console ctx=%u", ctx_id);
	return result(__func__, 0);
}

int32_t krun_add_virtio_console_default(uint32_t ctx_id, int input_fd, int output_fd, int err_fd)
{
	record("krun_add_virtio_console_default ctx=%u in=%d out=%d err=%d",
	       ctx_id, input_fd, output_fd, err_fd);
	return result(__func__, 0);
}

int32_t krun_set_workdir(uint32_t ctx_id, const char *workdir_path)
{
	record("krun_set_workdir ctx=%u", ctx_id);
	add_str("path", workdir_path);
	return result(__func__, 0);
}

int32_t krun_set_exec(uint32_t ctx_id, const char *exec_path,
		      const char *const argv[], const char *const envp[])
{
	record("krun_set_exec ctx=%u", ctx_id);
	add_str("path", exec_path);
	add_array("argv", argv);
	add_array("env", envp);
	return result(__func__, 0);
}

int32_t krun_set_env(uint32_t ctx_id, const char *const envp[])
{
	record("krun_set_env ctx=%u", ctx_id);
	add_array("env", envp);
	return result(__func__, 0);
}

int32_t krun_set_rlimits(uint32_t ctx_id, const char *const rlimits[])
{
	record("krun_set_rlimits ctx=%u", ctx_id);
	add_array("rlimits", rlimits);
	return result(__func__, 0);
}

int32_t krun_start_enter(uint32_t ctx_id)
{
	const char *status = getenv("KRUN_DOUBLE_EXIT");
	record("krun_start_enter ctx=%u", ctx_id);
	if (status != NULL) {
		flush();
		_exit(atoi(status));
	}
	return result(__func__, 0);
}
