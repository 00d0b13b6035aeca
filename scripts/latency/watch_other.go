//go:build !linux

package main

import "errors"

func watch([]string) error { return errors.New("watch needs Linux (inotify)") }
