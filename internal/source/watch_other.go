//go:build !linux

package source

import "errors"

func watchDir(dir string, wake chan<- struct{}) (func(), error) {
	return nil, errors.New("inotify is Linux only")
}
