// Command replica-sd is openbrc's Bacula storage daemon plugin: a shared
// library that bacula-sd loads from its Plugin Directory and that tells
// replicad when jobs start and end. Build it with
//
//	go build -buildmode=c-shared -o brc-replica-sd.so ./examples/replica-sd
//
// All of it is in package sdplugin; see its documentation for the SD
// configuration, the socket and the supported Bacula versions.
package main

import _ "github.com/openbrc/brc/sdplugin"

func main() {}
