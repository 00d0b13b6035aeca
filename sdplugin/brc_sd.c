//go:build cgo

/*
 * brc_sd.c - the C side of openbrc's SD plugin: the exported entry points
 * loadPlugin and unloadPlugin, the psdInfo/psdFuncs structs the SD keeps
 * pointers to for the life of the process (so they live in static C
 * memory), and shims for the SD's callbacks. The SD's JobMessage,
 * DebugMessage and registerBaculaEvents are C variadic functions, which
 * cgo cannot call; the shims call them with the format "%s" and one string
 * formatted in Go.
 *
 * Every decision (version, license token, what to send, when to log) is
 * made in Go (brcGo* functions, sdplugin/cgo.go). See brc_sd.h.
 */
#include <string.h>
#include "brc_sd.h"
#include "_cgo_export.h"

/* The SD's callbacks, copied from its bsdFuncs (v12 prefix) at load time. */
static brc_sd_funcs sd;

static int brc_new(brc_ctx *ctx);
static int brc_free(brc_ctx *ctx);
static int brc_get_value(brc_ctx *ctx, int var, void *value);
static int brc_set_value(brc_ctx *ctx, int var, void *value);
static int brc_handle_event(brc_ctx *ctx, brc_event *event, void *value);

static brc_plugin_info info = {
	sizeof(brc_plugin_info),
	0,        /* version: the SD's, set by loadPlugin */
	BRC_SD_MAGIC,
	"AGPLv3", /* license token: replaced by loadPlugin (Go decides, see doc.go) */
	"The openbrc authors",
	"2026-11-27",
	"1.0",
	"openbrc: tells replicad when jobs start and end and devices open and close",
};

static brc_plugin_funcs funcs = {
	sizeof(brc_plugin_funcs),
	0,
	brc_new,
	brc_free,
	brc_get_value,
	brc_set_value,
	brc_handle_event,
	NULL, /* handleGlobalPluginEvent: not needed */
};

int loadPlugin(brc_sd_info *binfo, brc_sd_funcs *bfuncs, brc_plugin_info **pinfo, brc_plugin_funcs **pfuncs)
{
	char *license = NULL;
	if (binfo == NULL || bfuncs == NULL || pinfo == NULL || pfuncs == NULL)
		return BRC_RC_ERROR;
	if (brcGoLoad(binfo->version, bfuncs->version, bfuncs->size, &license) != 0 || license == NULL)
		return BRC_RC_ERROR;
	memset(&sd, 0, sizeof sd);
	memcpy(&sd, bfuncs, BRC_SD_FUNCS_V12_SIZE); /* Go checked bfuncs->size >= 56 */
	sd.getBaculaGlobal = NULL;
	info.version = binfo->version;
	info.license = license;
	funcs.version = binfo->version;
	*pinfo = &info;
	*pfuncs = &funcs;
	return BRC_RC_OK;
}

int unloadPlugin(void)
{
	brcGoUnload();
	return BRC_RC_OK;
}

static int brc_new(brc_ctx *ctx)
{
	if (ctx == NULL)
		return BRC_RC_ERROR;
	ctx->pContext = (void *)(uintptr_t)brcGoNew();
	if (sd.registerBaculaEvents != NULL) /* the SD only logs them: every plugin gets every event */
		sd.registerBaculaEvents(ctx, 1u, 2u, 4u, 6u, 0u);
	return BRC_RC_OK;
}

static int brc_free(brc_ctx *ctx)
{
	if (ctx == NULL)
		return BRC_RC_OK;
	brcGoFree((uintptr_t)ctx->pContext);
	ctx->pContext = NULL;
	return BRC_RC_OK;
}

static int brc_get_value(brc_ctx *ctx, int var, void *value)
{
	(void)ctx; (void)var; (void)value;
	return BRC_RC_ERROR; /* never called by the SD */
}

static int brc_set_value(brc_ctx *ctx, int var, void *value)
{
	(void)ctx; (void)var; (void)value;
	return BRC_RC_ERROR; /* never called by the SD */
}

/* OK, except for a DeviceOpen that require_replica refuses (Go decides):
 * then Error, and the SD fails the job. */
static int brc_handle_event(brc_ctx *ctx, brc_event *event, void *value)
{
	(void)value;
	if (ctx == NULL || event == NULL)
		return BRC_RC_OK;
	return brcGoEvent(ctx, (uintptr_t)ctx->pContext, event->eventType) == BRC_RC_ERROR ? BRC_RC_ERROR : BRC_RC_OK;
}

int brc_get_jobid(brc_ctx *ctx, int *jobid)
{
	if (sd.getBaculaValue == NULL)
		return BRC_RC_ERROR;
	return sd.getBaculaValue(ctx, BRC_VAR_JOBID, jobid);
}

int brc_get_jobname(brc_ctx *ctx, char **name)
{
	if (sd.getBaculaValue == NULL)
		return BRC_RC_ERROR;
	return sd.getBaculaValue(ctx, BRC_VAR_JOBNAME, name);
}

void brc_job_message(brc_ctx *ctx, int type, const char *msg)
{
	if (sd.JobMessage != NULL)
		sd.JobMessage(ctx, "brc-replica-sd", 0, type, 0, "%s", msg);
}

void brc_debug_message(brc_ctx *ctx, int level, const char *msg)
{
	if (sd.DebugMessage != NULL)
		sd.DebugMessage(ctx, "brc-replica-sd", 0, level, "%s", msg);
}
