//go:build cgo

package sdplugin

// The cgo glue: Go functions called by brc_sd.c (loadPlugin, unloadPlugin
// and the psdFuncs entry points), and the Host of one SD call. The SD's
// structs, the plugin's psdInfo/psdFuncs and their strings stay in C
// memory; C holds no Go pointer (pContext is an instance id).

/*
#include <stdlib.h>
#include "brc_sd.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

var (
	glueMu   sync.Mutex
	plugin   *Plugin                // of this process, set by loadPlugin
	licenses = map[string]*C.char{} // C copies of the license tokens, never freed
)

func current() *Plugin {
	glueMu.Lock()
	defer glueMu.Unlock()
	return plugin
}

// noPanic keeps a bug of the plugin from taking the storage daemon down:
// a panic in a Go function called from C would end the process.
func noPanic() { _ = recover() }

//export brcGoLoad
func brcGoLoad(sdVersion, funcsVersion, funcsSize C.uint32_t, license **C.char) (rc C.int) {
	rc = 1
	defer noPanic()
	glueMu.Lock()
	defer glueMu.Unlock()
	p := plugin
	if p == nil {
		cfg, warn := ConfigFromEnv(os.Getenv)
		for _, w := range warn {
			fmt.Fprintf(os.Stderr, "brc-replica-sd: configuration: %s\n", w)
		}
		cfg.Warnings = warn
		p = New(cfg)
	}
	a, err := p.Load(uint32(sdVersion), uint32(funcsSize))
	if err != nil {
		fmt.Fprintf(os.Stderr, "brc-replica-sd: not loaded: %v (bsdFuncs version %d)\n", err, funcsVersion)
		return 1
	}
	plugin = p
	l := licenses[a.License]
	if l == nil {
		l = C.CString(a.License)
		licenses[a.License] = l
	}
	*license = l
	return 0
}

//export brcGoUnload
func brcGoUnload() {
	defer noPanic()
	if p := current(); p != nil {
		p.Unload()
	}
}

//export brcGoNew
func brcGoNew() (id C.uintptr_t) {
	defer noPanic()
	if p := current(); p != nil {
		return C.uintptr_t(p.NewInstance())
	}
	return 0
}

//export brcGoFree
func brcGoFree(id C.uintptr_t) {
	defer noPanic()
	if p := current(); p != nil {
		p.FreeInstance(uintptr(id))
	}
}

// brcGoEvent returns the bRC of handlePluginEvent: OK, or Error when
// require_replica fails a DeviceOpen. A panic answers OK.
//
//export brcGoEvent
func brcGoEvent(ctx *C.brc_ctx, id C.uintptr_t, event C.uint32_t) (rc C.int) {
	rc = C.BRC_RC_OK
	defer noPanic()
	if p := current(); p != nil {
		if err := p.HandleEvent(uintptr(id), uint32(event), cHost{ctx}); err != nil {
			return C.BRC_RC_ERROR
		}
	}
	return C.BRC_RC_OK
}

// cHost is the Host of one SD call: ctx is valid only during the call.
type cHost struct{ ctx *C.brc_ctx }

func (h cHost) JobID() int {
	var id C.int // getBaculaValue leaves unimplemented values unchanged
	if C.brc_get_jobid(h.ctx, &id) != C.BRC_RC_OK {
		return 0
	}
	return int(id)
}

func (h cHost) Job() string {
	var name *C.char
	if C.brc_get_jobname(h.ctx, &name) != C.BRC_RC_OK || name == nil {
		return ""
	}
	return C.GoString(name)
}

func (h cHost) Message(typ int, msg string) {
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	C.brc_job_message(h.ctx, C.int(typ), cs)
}

func (h cHost) Debug(level int, msg string) {
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	C.brc_debug_message(h.ctx, C.int(level), cs)
}
