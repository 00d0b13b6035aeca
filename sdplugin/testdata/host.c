/*
 * host.c - a stand-in for bacula-sd that drives openbrc's SD plugin the way
 * the SD does (docs/bacula-format.md section 11), built and run by
 * host_test.go. Written from the spec; uses sdplugin/brc_sd.h for the
 * layouts.
 *
 *   host PLUGIN.so VERSION SLEEP_MS
 *
 * Prints key=value lines that the test checks. The SD's callbacks record
 * what the plugin calls.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "brc_sd.h"

typedef int (*load_fn)(brc_sd_info *, brc_sd_funcs *, brc_plugin_info **, brc_plugin_funcs **);
typedef int (*unload_fn)(void);

/* What the SD keeps in bContext (opaque to the plugin): a fake JCR. */
struct jcr {
	int jobid;
	char name[128];
};

static int get_value_calls;

static int cb_register(brc_ctx *ctx, ...)
{
	va_list ap;
	unsigned int ev;
	printf("register ctx=%s", ctx ? "set" : "null");
	va_start(ap, ctx);
	while ((ev = va_arg(ap, unsigned int)) != 0)
		printf(" %u", ev);
	va_end(ap);
	printf("\n");
	return BRC_RC_OK;
}

static int cb_get_value(brc_ctx *ctx, int var, void *value)
{
	struct jcr *j;
	get_value_calls++;
	if (ctx == NULL || value == NULL || ctx->bContext == NULL)
		return BRC_RC_ERROR;
	j = ctx->bContext;
	switch (var) {
	case BRC_VAR_JOBID:
		*(int *)value = j->jobid;
		break;
	case BRC_VAR_JOBNAME:
		*(char **)value = j->name;
		break;
	default: /* like 9.6.7: OK, value unchanged */
		break;
	}
	return BRC_RC_OK;
}

static int cb_set_value(brc_ctx *ctx, int var, void *value)
{
	(void)ctx; (void)var; (void)value;
	return BRC_RC_OK;
}

static int cb_job_message(brc_ctx *ctx, const char *file, int line, int type, int64_t mtime, const char *fmt, ...)
{
	char buf[2000];
	va_list ap;
	(void)line; (void)mtime;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	buf[strcspn(buf, "\n")] = 0;
	printf("jobmsg ctx=%s jobid=%d file=%s type=%d fmt=%s text=%s\n", ctx ? "set" : "null",
	       ctx && ctx->bContext ? ((struct jcr *)ctx->bContext)->jobid : -1, file, type, fmt, buf);
	return BRC_RC_OK;
}

static int cb_debug_message(brc_ctx *ctx, const char *file, int line, int level, const char *fmt, ...)
{
	char buf[2000];
	va_list ap;
	(void)line; (void)file;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	buf[strcspn(buf, "\n")] = 0;
	printf("debugmsg ctx=%s level=%d fmt=%s text=%s\n", ctx ? "set" : "null", level, fmt, buf);
	return BRC_RC_OK;
}

static char *cb_edit_codes(void *dcr, char *omsg, const char *imsg, const char *cmd)
{
	(void)dcr; (void)imsg; (void)cmd;
	return omsg;
}

static int cb_get_global(int var, void *value)
{
	(void)var; (void)value;
	return BRC_RC_OK;
}

static int sleep_ms;

static void pause_ms(void)
{
	struct timespec ts = {sleep_ms / 1000, (long)(sleep_ms % 1000) * 1000000L};
	if (sleep_ms > 0)
		nanosleep(&ts, NULL);
}

static brc_plugin_funcs *pf;

static void event(brc_ctx *ctx, const char *who, uint32_t id)
{
	brc_event ev = {id};
	char *value = id == 1 ? "JobStart" : NULL;
	struct timespec t0, t1;
	int rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = pf->handlePluginEvent(ctx, &ev, value);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("event %s %u rc=%d us=%ld\n", who, id, rc,
	       (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000));
	fflush(stdout);
	pause_ms();
}

/* The SD's checks after loadPlugin, in its order. */
static const char *sd_check(brc_plugin_info *pi, uint32_t version)
{
	if (pi == NULL || pi->magic == NULL || strcmp(pi->magic, BRC_SD_MAGIC) != 0)
		return "magic";
	if (pi->version != version)
		return "version";
	if (pi->license == NULL)
		return "license";
	if (version == 12) {
		if (strcmp(pi->license, "Bacula AGPLv3") && strcmp(pi->license, "AGPLv3") && strcmp(pi->license, "Bacula"))
			return "license";
	} else if (strcmp(pi->license, "Bacula AGPLv3") && strcmp(pi->license, "AGPLv3")) {
		return "license";
	}
	if (pi->size != sizeof(brc_plugin_info))
		return "size";
	return "ok";
}

int main(int argc, char **argv)
{
	void *h;
	load_fn load;
	unload_fn unload;
	uint32_t version;
	brc_sd_info bi;
	brc_sd_funcs bf;
	brc_plugin_info *pi = NULL;
	int rc;

	if (argc != 4) {
		fprintf(stderr, "usage: host PLUGIN.so VERSION SLEEP_MS\n");
		return 2;
	}
	version = (uint32_t)atoi(argv[2]);
	sleep_ms = atoi(argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	h = dlopen(argv[1], RTLD_NOW); /* like the SD: no RTLD_GLOBAL */
	if (h == NULL) {
		printf("dlopen error=%s\n", dlerror());
		return 1;
	}
	load = (load_fn)dlsym(h, "loadPlugin");
	unload = (unload_fn)dlsym(h, "unloadPlugin");
	if (load == NULL || unload == NULL) {
		printf("dlsym missing\n");
		return 1;
	}

	memset(&bf, 0, sizeof bf);
	bf.size = version == 12 ? 56 : 64; /* sizeof(bsdFuncs) of that version */
	bf.version = version;
	bf.registerBaculaEvents = cb_register;
	bf.getBaculaValue = cb_get_value;
	bf.setBaculaValue = cb_set_value;
	bf.JobMessage = cb_job_message;
	bf.DebugMessage = cb_debug_message;
	bf.EditDeviceCodes = cb_edit_codes;
	if (version >= 13)
		bf.getBaculaGlobal = cb_get_global;
	bi.size = bf.size; /* the SD's quirk: sizeof(bsdFuncs) */
	bi.version = version;

	rc = load(&bi, &bf, &pi, &pf);
	printf("load rc=%d\n", rc);
	if (rc != 0) {
		/* The SD unloads a plugin it refuses, then dlcloses it. */
		printf("unload rc=%d\n", unload());
		dlclose(h);
		printf("done\n");
		return 0;
	}
	printf("info.size=%u\ninfo.version=%u\ninfo.magic=%s\ninfo.license=%s\ninfo.author=%s\ninfo.date=%s\ninfo.pversion=%s\ninfo.description=%s\n",
	       pi->size, pi->version, pi->magic, pi->license, pi->author, pi->date, pi->plugin_version, pi->description);
	printf("funcs.size=%u\nfuncs.version=%u\nfuncs.global=%s\n", pf->size, pf->version,
	       pf->handleGlobalPluginEvent ? "set" : "null");
	printf("sdcheck=%s\n", sd_check(pi, version));

	/* Start-up: a system JCR (JobId 0), device init and an AlwaysOpen device. */
	{
		struct jcr sys = {0, "*System*"};
		brc_ctx ctx = {&sys, NULL};
		printf("new system rc=%d\n", pf->newPlugin(&ctx));
		if (pf->handleGlobalPluginEvent != NULL) {
			brc_event ge = {1};
			printf("global rc=%d\n", pf->handleGlobalPluginEvent(&ge, NULL));
		}
		event(&ctx, "system", 3);
		event(&ctx, "system", 4);
		event(&ctx, "system", 6);
		printf("free system rc=%d\n", pf->freePlugin(&ctx));
	}

	/* Two jobs, B interleaved with A. */
	{
		struct jcr a = {42, "BackupA.2026-11-27_10.00.00_03"};
		struct jcr b = {43, "BackupB.2026-11-27_10.00.01_04"};
		brc_ctx ca = {&a, NULL}, cb = {&b, NULL};
		printf("new A rc=%d\n", pf->newPlugin(&ca));
		printf("pcontext A=%s\n", ca.pContext ? "set" : "null");
		event(&ca, "A", 1);
		printf("new B rc=%d\n", pf->newPlugin(&cb));
		printf("pcontext distinct=%s\n", ca.pContext != cb.pContext ? "yes" : "no");
		event(&cb, "B", 1);
		event(&ca, "A", 5);
		event(&ca, "A", 4);
		event(&cb, "B", 4);
		event(&ca, "A", 6);
		event(&ca, "A", 6);
		event(&cb, "B", 6);
		event(&ca, "A", 2);
		event(&cb, "B", 2);
		printf("free A rc=%d\n", pf->freePlugin(&ca));
		printf("free B rc=%d\n", pf->freePlugin(&cb));
		{
			/* A context the plugin never saw (no newPlugin), JobId 0: must not crash. */
			struct jcr none = {0, ""};
			brc_ctx cn = {&none, NULL};
			event(&cn, "unknown", 4);
		}
	}
	printf("getvalue calls=%d\n", get_value_calls);
	printf("unload rc=%d\n", unload());
	dlclose(h);
	printf("done\n");
	return 0;
}
