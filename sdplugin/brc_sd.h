/*
 * brc_sd.h - the subset of the Bacula storage daemon (SD) plugin ABI that
 * openbrc's SD plugin uses, for interface versions 12 (Bacula 7.0 - 9.6)
 * and 13 (Bacula 11.0 and later) on LP64.
 *
 * Written from openbrc's clean-room description of the interface
 * (docs/bacula-format.md section 11), not from Bacula's headers: the type
 * and field names here are openbrc's own. Only the memory layout and the
 * numeric values have to agree with the SD, and the static assertions at
 * the end pin the layout the description gives.
 */
#ifndef BRC_SD_H
#define BRC_SD_H

#include <stddef.h>
#include <stdint.h>

/* Return codes (the SD's bRC, a C enum: int). */
enum {
	BRC_RC_OK = 0,
	BRC_RC_STOP = 1,
	BRC_RC_ERROR = 2,
	BRC_RC_MORE = 3,
	BRC_RC_TERM = 4,
	BRC_RC_SEEN = 5,
	BRC_RC_CORE = 6,
	BRC_RC_SKIP = 7,
	BRC_RC_CANCEL = 8
};

/* The plugin magic the SD compares with psdInfo.magic. */
#define BRC_SD_MAGIC "*BaculaSDPluginData*"

/* getBaculaValue variables that the SD implements. */
enum {
	BRC_VAR_JOBID = 4,    /* writes an int */
	BRC_VAR_JOBNAME = 11  /* writes a char*: the unique Job name */
};

/* Job message types used (M_* of the SD). */
enum {
	BRC_M_ERROR = 4,
	BRC_M_WARNING = 5,
	BRC_M_INFO = 6
};

/* One per plugin per JCR. bContext is the SD's, pContext ours. */
typedef struct brc_ctx {
	void *bContext;
	void *pContext;
} brc_ctx;

/* bsdEvent: one event id. */
typedef struct brc_event {
	uint32_t eventType;
} brc_event;

/* bsdInfo, given to loadPlugin. The SD fills size with sizeof(bsdFuncs). */
typedef struct brc_sd_info {
	uint32_t size;
	uint32_t version;
} brc_sd_info;

/* bsdFuncs: callbacks into the SD. 56 bytes in v12, 64 in v13. */
typedef struct brc_sd_funcs {
	uint32_t size;
	uint32_t version;
	int (*registerBaculaEvents)(brc_ctx *ctx, ...);
	int (*getBaculaValue)(brc_ctx *ctx, int var, void *value);
	int (*setBaculaValue)(brc_ctx *ctx, int var, void *value);
	int (*JobMessage)(brc_ctx *ctx, const char *file, int line, int type, int64_t mtime, const char *fmt, ...);
	int (*DebugMessage)(brc_ctx *ctx, const char *file, int line, int level, const char *fmt, ...);
	char *(*EditDeviceCodes)(void *dcr, char *omsg, const char *imsg, const char *cmd);
	/* v13 only; never read by openbrc */
	int (*getBaculaGlobal)(int var, void *value);
} brc_sd_funcs;

/* The v12 prefix of brc_sd_funcs: what every supported SD provides. */
#define BRC_SD_FUNCS_V12_SIZE 56

/* psdInfo, returned by the plugin and checked by the SD. */
typedef struct brc_plugin_info {
	uint32_t size;    /* must be sizeof(brc_plugin_info) = 56 */
	uint32_t version; /* must equal the SD's interface version */
	const char *magic;
	const char *license;
	const char *author;
	const char *date;
	const char *plugin_version;
	const char *description;
} brc_plugin_info;

/* psdFuncs: the plugin's entry points. */
typedef struct brc_plugin_funcs {
	uint32_t size;
	uint32_t version;
	int (*newPlugin)(brc_ctx *ctx);
	int (*freePlugin)(brc_ctx *ctx);
	int (*getPluginValue)(brc_ctx *ctx, int var, void *value);
	int (*setPluginValue)(brc_ctx *ctx, int var, void *value);
	int (*handlePluginEvent)(brc_ctx *ctx, brc_event *event, void *value);
	int (*handleGlobalPluginEvent)(brc_event *event, void *value);
} brc_plugin_funcs;

_Static_assert(sizeof(void *) == 8, "brc_sd.h describes the LP64 layout only");
_Static_assert(sizeof(brc_ctx) == 16, "bpContext is 16 bytes");
_Static_assert(sizeof(brc_sd_info) == 8, "bsdInfo is 8 bytes");
_Static_assert(offsetof(brc_sd_funcs, EditDeviceCodes) == 48, "bsdFuncs v12 layout");
_Static_assert(offsetof(brc_sd_funcs, getBaculaGlobal) == BRC_SD_FUNCS_V12_SIZE, "bsdFuncs v13 layout");
_Static_assert(sizeof(brc_sd_funcs) == 64, "bsdFuncs v13 is 64 bytes");
_Static_assert(sizeof(brc_plugin_info) == 56, "psdInfo is 56 bytes");
_Static_assert(offsetof(brc_plugin_info, license) == 16, "psdInfo layout");
_Static_assert(sizeof(brc_plugin_funcs) == 56, "psdFuncs is 56 bytes");
_Static_assert(offsetof(brc_plugin_funcs, handleGlobalPluginEvent) == 48, "psdFuncs layout");

/* The exported entry points (C linkage, looked up with dlsym by the SD). */
int loadPlugin(brc_sd_info *info, brc_sd_funcs *funcs, brc_plugin_info **pinfo, brc_plugin_funcs **pfuncs);
int unloadPlugin(void);

/* Shims for the Go side (brc_sd.c): they call the SD's callbacks saved by
 * loadPlugin, and do nothing if the SD did not provide one. */
int brc_get_jobid(brc_ctx *ctx, int *jobid);
int brc_get_jobname(brc_ctx *ctx, char **name);
void brc_job_message(brc_ctx *ctx, int type, const char *msg);
void brc_debug_message(brc_ctx *ctx, int level, const char *msg);

#endif
