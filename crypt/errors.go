package crypt

import "errors"

// Errors returned by the package, wrapped with context (the chunk number,
// the file path ...); test with errors.Is. Key material never appears in
// an error message.
var (
	// ErrKeyFormat: a key is not exactly 64 hexadecimal characters.
	ErrKeyFormat = errors.New("crypt: key must be 64 hexadecimal characters")
	// ErrKeyFileOwner: a key file is not owned by the running user.
	ErrKeyFileOwner = errors.New("crypt: key file not owned by the running user")
	// ErrKeyFileMode: a key file is readable or writable by group or others.
	ErrKeyFileMode = errors.New("crypt: key file accessible by group or others")
	// ErrNotEncrypted: the input does not start with the format's magic.
	ErrNotEncrypted = errors.New("crypt: not an openbrc encrypted file")
	// ErrVersion: the magic is right but the format version is unknown.
	ErrVersion = errors.New("crypt: unsupported format version")
	// ErrUnknownKey: the Keyring has no key with the file's key id (wrong
	// or missing key).
	ErrUnknownKey = errors.New("crypt: no key with the file's key id")
	// ErrAuth: a chunk failed authentication. Damage, tampering, chunks
	// reordered or taken from another file, and a path other than the one
	// the file was written for all look the same to AES-GCM. ErrTruncated
	// and ErrTrailingData match ErrAuth too, so errors.Is(err, ErrAuth)
	// tells any integrity failure.
	ErrAuth = errors.New("crypt: authentication failed (damaged or tampered data, or wrong path)")
	// ErrTruncated: the input ends before its final chunk: every chunk
	// read is authentic but none is marked final. Matches ErrAuth. A cut
	// inside a chunk cannot be told from damage and is plain ErrAuth.
	ErrTruncated error = authError("crypt: truncated (final chunk missing)")
	// ErrTrailingData: bytes follow an authentic final chunk. Matches
	// ErrAuth. Detected as such when the final chunk is a full one;
	// otherwise the extra bytes make the final chunk fail as ErrAuth.
	ErrTrailingData error = authError("crypt: data after the final chunk")
	// ErrClosed: Write or Close after a Close.
	ErrClosed = errors.New("crypt: writer closed")
	// ErrOffset: ReadAt with a negative offset.
	ErrOffset = errors.New("crypt: negative offset")
	// ErrNoPath: DecryptTree on a single file without TreeOptions.PathPrefix,
	// which is then the file's own logical path.
	ErrNoPath = errors.New("crypt: a single file needs TreeOptions.PathPrefix (its logical path)")
	// ErrTreeFailed: DecryptTree finished but some entries failed (each
	// one was passed to TreeOptions.Errorf).
	ErrTreeFailed = errors.New("crypt: some entries not decrypted")
	// ErrUnsupported: the operation is not implemented on this system.
	ErrUnsupported = errors.New("crypt: not supported on this system")
)

// authError is a sentinel that also matches ErrAuth, so that callers who
// only care whether the data is authentic need a single test.
type authError string

func (e authError) Error() string        { return string(e) }
func (e authError) Is(target error) bool { return target == ErrAuth }
