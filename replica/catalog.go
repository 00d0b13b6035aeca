package replica

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/openbrc/brc/bacularec"
)

// Catalog is the persistent record of what each target holds: per job its
// outcome (JobLog), per regular file its IndexEntry (Index). It lives in
// one bbolt file in the state directory, on local disk (not on the
// targets: an NFS mount is no place for a memory-mapped database).
//
// bbolt because the catalog is read far more than written (every file of
// every job looks up its entry; entries are written in batches), must
// survive crashes without a recovery step (copy-on-write B+tree, one fsync
// per batch), scales to millions of keys with a flat memory footprint
// (the OS pages the mapped file), and is a single pure-Go file format with
// no background compaction to tune.
type Catalog struct {
	db *bbolt.DB
	mu sync.Mutex
}

var (
	bFiles = []byte("files")
	bJobs  = []byte("jobs")
)

// OpenCatalog opens (creating it if needed) the catalog at path. Only one
// process may hold it: a second waits up to a second, then fails.
func OpenCatalog(path string) (*Catalog, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("replica: catalog %s: %w", path, err)
	}
	return &Catalog{db: db}, nil
}

// Close closes the catalog.
func (c *Catalog) Close() error { return c.db.Close() }

func targetBucket(tx *bbolt.Tx, target string, sub []byte, create bool) (*bbolt.Bucket, error) {
	name := []byte("target:" + target)
	if !create {
		t := tx.Bucket(name)
		if t == nil {
			return nil, nil
		}
		return t.Bucket(sub), nil
	}
	t, err := tx.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return t.CreateBucketIfNotExists(sub)
}

// Done implements JobLog.
func (c *Catalog) Done(target string, job *bacularec.Job) (bool, error) {
	var done bool
	err := c.db.View(func(tx *bbolt.Tx) error {
		b, _ := targetBucket(tx, target, bJobs, false)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(jobName(job)))
		if v == nil {
			return nil
		}
		var r JobRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		done = r.Done
		return nil
	})
	return done, err
}

// Record implements JobLog. A job recorded done stays done: a later
// failed replay of it does not undo what the target holds.
func (c *Catalog) Record(target string, job *bacularec.Job, r JobRecord) error {
	return c.db.Update(func(tx *bbolt.Tx) error {
		b, err := targetBucket(tx, target, bJobs, true)
		if err != nil {
			return err
		}
		key := []byte(jobName(job))
		if v := b.Get(key); v != nil {
			var old JobRecord
			if json.Unmarshal(v, &old) == nil {
				r.Attempts = old.Attempts + 1
				if old.Done && !r.Done {
					return nil
				}
			}
		} else {
			r.Attempts = 1
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(key, v)
	})
}

// Jobs calls fn with every job recorded for target, in job-name order.
func (c *Catalog) Jobs(target string, fn func(JobRecord) error) error {
	return c.db.View(func(tx *bbolt.Tx) error {
		b, _ := targetBucket(tx, target, bJobs, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r JobRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("replica: catalog job %q: %w", k, err)
			}
			return fn(r)
		})
	})
}

// Files calls fn with every indexed file of target, in path order. The
// path string is only valid during the call.
func (c *Catalog) Files(target string, fn func(path string, e *IndexEntry) error) error {
	return c.db.View(func(tx *bbolt.Tx) error {
		b, _ := targetBucket(tx, target, bFiles, false)
		if b == nil {
			return nil
		}
		var e IndexEntry
		return b.ForEach(func(k, v []byte) error {
			if err := e.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("replica: catalog file %q: %w", k, err)
			}
			return fn(string(k), &e)
		})
	})
}

// Index returns target's state index. Puts and Deletes are buffered and
// written in one transaction by Flush (or when many are waiting).
func (c *Catalog) Index(target string) Index {
	return newBufIndex[IndexEntry](c, target, bFiles, "index")
}

const indexBuffer = 20000

// bufIndex is an index of entries of type E in a target's bucket of the
// catalog, with its writes buffered.
type bufIndex[E any, P interface {
	*E
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}] struct {
	c      *Catalog
	target string
	bucket []byte
	name   string        // for errors
	mu     sync.Mutex    // guards buf
	buf    map[string]*E // nil value: delete
}

func newBufIndex[E any, P interface {
	*E
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}](c *Catalog, target string, bucket []byte, name string) *bufIndex[E, P] {
	return &bufIndex[E, P]{c: c, target: target, bucket: bucket, name: name, buf: map[string]*E{}}
}

func (x *bufIndex[E, P]) Get(path string) (E, bool, error) {
	var e E
	x.mu.Lock()
	if b, ok := x.buf[path]; ok {
		x.mu.Unlock()
		if b == nil {
			return e, false, nil
		}
		return *b, true, nil
	}
	x.mu.Unlock()
	var found bool
	err := x.c.db.View(func(tx *bbolt.Tx) error {
		b, _ := targetBucket(tx, x.target, x.bucket, false)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(path))
		if v == nil {
			return nil
		}
		found = true
		return P(&e).UnmarshalBinary(v)
	})
	if err != nil {
		return e, false, fmt.Errorf("replica: %s of %s: %s: %w", x.name, x.target, path, err)
	}
	return e, found, nil
}

func (x *bufIndex[E, P]) Put(path string, e E) error {
	x.mu.Lock()
	x.buf[path] = &e
	n := len(x.buf)
	x.mu.Unlock()
	if n >= indexBuffer {
		return x.Flush()
	}
	return nil
}

func (x *bufIndex[E, P]) Delete(path string) error {
	x.mu.Lock()
	x.buf[path] = nil
	x.mu.Unlock()
	return nil
}

func (x *bufIndex[E, P]) Flush() error {
	x.mu.Lock()
	buf := x.buf
	x.buf = map[string]*E{}
	x.mu.Unlock()
	if len(buf) == 0 {
		return nil
	}
	err := x.c.db.Update(func(tx *bbolt.Tx) error {
		b, err := targetBucket(tx, x.target, x.bucket, true)
		if err != nil {
			return err
		}
		// In key order, and pages filled: Bacula sends a tree in path
		// order, so the index grows at its end, and half-full pages would
		// double the file (and what a report maps in).
		b.FillPercent = 0.9
		for _, p := range slices.Sorted(maps.Keys(buf)) {
			e := buf[p]
			if e == nil {
				if err := b.Delete([]byte(p)); err != nil {
					return err
				}
				continue
			}
			v, _ := P(e).MarshalBinary()
			if err := b.Put([]byte(p), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replica: %s of %s: %w", x.name, x.target, err)
	}
	return nil
}
