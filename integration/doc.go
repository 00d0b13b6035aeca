// Package integration holds openbrc's end-to-end tests against a real
// Bacula 9.6 installation: a throw-away lab (scripts/lab/up.sh) backs up
// generated trees with every option set the lab offers, and the volumes are
// extracted both with Bacula's bextract and with "replicad extract"; the
// resulting trees are compared with each other and with the source.
//
// The tests only exist with the "integration" build tag and need root,
// the Debian bacula packages (scripts/lab/install.sh) and the tools the lab
// scripts use; a missing prerequisite fails the tests, it never skips them:
//
//	go test -tags integration -count=1 -timeout 20m -v ./integration/
//
// Set OPENBRC_KEEP_LAB=1 to keep the lab's work directory (it is always
// kept when a test fails).
//
// Without the tag this package is empty.
package integration
