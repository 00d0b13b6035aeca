package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/openbrc/brc/crypt"
)

// DecryptTarget restores src, the root of an encrypted target (or a
// subtree of one, see crypt.TreeOptions.PathPrefix), to dst: it is
// crypt.DecryptTree, plus hard links. The names of a hard link share the
// ciphertext of the first name, which only decrypts for that name's path
// (see Encrypt); a name that fails authentication for its own path and
// has other names under src is decrypted for each of theirs in turn, and
// counted as failed only when none fits. Everything else, errors
// included, is as crypt.DecryptTree.
func DecryptTarget(ctx context.Context, src, dst string, ring *crypt.Keyring, opt crypt.TreeOptions) (crypt.TreeStats, error) {
	fi, err := os.Lstat(src)
	if err != nil || !fi.IsDir() {
		return crypt.DecryptTree(ctx, src, dst, ring, opt)
	}
	var retry []*fs.PathError
	user := opt.Errorf
	opt.Errorf = func(err error) {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "decrypt" && errors.Is(err, crypt.ErrAuth) {
			var st syscall.Stat_t
			if syscall.Lstat(pe.Path, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink > 1 {
				retry = append(retry, pe)
				return
			}
		}
		if user != nil {
			user(err)
		}
	}
	stats, err := crypt.DecryptTree(ctx, src, dst, ring, opt)
	if len(retry) == 0 || err != nil && !errors.Is(err, crypt.ErrTreeFailed) {
		return stats, err
	}
	groups := inodeGroups(src)
	prefix := path.Join("/", filepath.ToSlash(opt.PathPrefix))
	for _, pe := range retry {
		if n, err := decryptLink(src, dst, pe.Path, prefix, groups, ring); err == nil {
			stats.Files++
			stats.Failed--
			stats.Bytes += n
			continue
		}
		if user != nil {
			user(pe)
		}
	}
	if ctx.Err() != nil {
		return stats, ctx.Err()
	}
	if stats.Failed > 0 {
		return stats, fmt.Errorf("%w: %d failed", crypt.ErrTreeFailed, stats.Failed)
	}
	return stats, nil
}

type inode struct{ dev, ino uint64 }

// inodeGroups maps the regular files under root with several names to
// their names.
func inodeGroups(root string) map[inode][]string {
	groups := map[inode][]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil && st.Nlink > 1 {
			id := inode{uint64(st.Dev), st.Ino}
			groups[id] = append(groups[id], p)
		}
		return nil
	})
	return groups
}

// decryptLink decrypts the name p of a hard link for the path of another
// of its names, to its place under dst, with p's metadata.
func decryptLink(src, dst, p, prefix string, groups map[inode][]string, ring *crypt.Keyring) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return 0, err
	}
	rel, err := filepath.Rel(src, p)
	if err != nil {
		return 0, err
	}
	out := filepath.Join(dst, rel)
	last := crypt.ErrAuth
	for _, other := range groups[inode{uint64(st.Dev), st.Ino}] {
		if other == p {
			continue
		}
		orel, err := filepath.Rel(src, other)
		if err != nil {
			continue
		}
		n, err := decryptFileAs(p, out, path.Join(prefix, filepath.ToSlash(orel)), &st, ring)
		if err == nil {
			// The directory changed: the rename made durable, its
			// times again.
			dir := filepath.Dir(out)
			if d, err := os.Open(dir); err == nil {
				d.Sync()
				d.Close()
			}
			var ds syscall.Stat_t
			if syscall.Stat(filepath.Dir(p), &ds) == nil {
				os.Chtimes(dir, time.Unix(ds.Atim.Unix()), time.Unix(ds.Mtim.Unix()))
			}
			return n, nil
		}
		last = err
	}
	return 0, last
}

// decryptFileAs decrypts p for logical into a temporary file renamed to
// out once complete, with the mode, owner (as root) and times of st.
func decryptFileAs(p, out, logical string, st *syscall.Stat_t, ring *crypt.Keyring) (n int64, err error) {
	in, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	r, err := crypt.NewReader(in, ring, logical)
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".brc-decrypt.*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if n, err = io.Copy(tmp, r); err != nil {
		return 0, err
	}
	if err = tmp.Sync(); err != nil {
		return 0, err
	}
	if err = tmp.Close(); err != nil {
		return 0, err
	}
	if os.Geteuid() == 0 {
		if err = os.Lchown(tmp.Name(), int(st.Uid), int(st.Gid)); err != nil {
			return 0, err
		}
	}
	mode := fs.FileMode(st.Mode & 0o777)
	for _, b := range []struct {
		bit  uint32
		mode fs.FileMode
	}{{syscall.S_ISUID, fs.ModeSetuid}, {syscall.S_ISGID, fs.ModeSetgid}, {syscall.S_ISVTX, fs.ModeSticky}} {
		if st.Mode&b.bit != 0 {
			mode |= b.mode
		}
	}
	if err = os.Chmod(tmp.Name(), mode); err != nil {
		return 0, err
	}
	if err = os.Chtimes(tmp.Name(), time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix())); err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), out)
}
