package bacularec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/openbrc/brc/internal/fastlz"
	"github.com/openbrc/brc/internal/lzo"
)

// Compression header magics of streams 29-33 (four ASCII letters, big-endian).
const (
	MagicLZO          = 0x4C5A4F58 // "LZOX": LZO1X-1, Bacula and Bareos
	MagicZstd         = 0x4C5A4F59 // "LZOY": zstd, Bacula 15
	MagicGzip         = 0x475A4950 // "GZIP": zlib, Bareos
	MagicFZFZ         = 0x465A465A // "FZFZ": FastLZ in fastlzlib blocks, Bareos
	MagicFZ4L         = 0x465A344C // "FZ4L": LZ4 in fastlzlib blocks, Bareos
	MagicFZ4H         = 0x465A3448 // "FZ4H": LZ4HC in fastlzlib blocks, Bareos
	compHeaderLen     = 12
	compHeaderVersion = 1
)

// maxDecoded bounds the decompressed size of one record. Records hold one
// file-daemon buffer: 64 KiB by default (256 KiB for Bareos 23), at most
// Bacula's 20 MB record limit.
const maxDecoded = MaxRecordLength

// decoder decompresses records, reusing its buffers and codec state.
type decoder struct {
	out  []byte
	zr   io.ReadCloser
	br   bytes.Reader
	zstd *zstd.Decoder
}

// payload decodes the data of a record of stream type typ, after its sparse
// offset: zlib for the GZIP streams, the compression header's codec for
// streams 29-31, the bytes themselves otherwise.
func (d *decoder) payload(typ int, p []byte) ([]byte, error) {
	switch typ {
	case StreamGzipData, StreamSparseGzipData:
		return d.zlib(p)
	case StreamCompressedData, StreamSparseCompressed:
		return d.compressed(p)
	}
	return p, nil
}

// zlib inflates one complete zlib stream (Bacula's "GZIP" streams are zlib,
// RFC 1950, one per record).
func (d *decoder) zlib(src []byte) ([]byte, error) {
	d.br.Reset(src)
	var err error
	if d.zr == nil {
		d.zr, err = zlib.NewReader(&d.br)
	} else {
		err = d.zr.(zlib.Resetter).Reset(&d.br, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: zlib: %v", ErrCompression, err)
	}
	if cap(d.out) < 128<<10 {
		d.out = make([]byte, 0, 128<<10)
	}
	out := d.out[:0]
	for {
		if len(out) == cap(out) {
			if cap(out) >= maxDecoded {
				return nil, fmt.Errorf("%w: zlib data inflates beyond %d bytes", ErrCompression, maxDecoded)
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := d.zr.Read(out[len(out):min(cap(out), maxDecoded)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			d.out = out
			return nil, fmt.Errorf("%w: zlib: %v", ErrCompression, err)
		}
	}
	d.out = out
	return out, nil
}

// compressed decodes the payload of streams 29-31: a 12-byte header
// (magic, compressed length, level, version) and the compressed body.
func (d *decoder) compressed(p []byte) ([]byte, error) {
	if len(p) < compHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the compression header", ErrCompression, len(p))
	}
	magic := binary.BigEndian.Uint32(p)
	clen := binary.BigEndian.Uint32(p[4:])
	ver := binary.BigEndian.Uint16(p[10:])
	if ver != compHeaderVersion {
		return nil, fmt.Errorf("%w: compression header version %d", ErrCompression, ver)
	}
	body := p[compHeaderLen:]
	if uint64(clen) != uint64(len(body)) {
		return nil, fmt.Errorf("%w: compression header says %d bytes, record has %d", ErrCompression, clen, len(body))
	}
	switch magic {
	case MagicLZO:
		return d.lzo(body)
	case MagicGzip:
		return d.zlib(body)
	case MagicZstd:
		return d.zstdFrame(body)
	case MagicFZFZ, MagicFZ4L, MagicFZ4H:
		c := fastlz.LZ4
		if magic == MagicFZFZ {
			c = fastlz.FastLZ
		}
		out, err := fastlz.DecodeStream(d.out[:0], body, c, maxDecoded)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCompression, err)
		}
		d.out = out
		return out, nil
	}
	return nil, fmt.Errorf("%w: magic 0x%08X (%q)", ErrUnknownCodec, magic, p[:4])
}

func (d *decoder) lzo(body []byte) ([]byte, error) {
	if cap(d.out) < 64<<10 {
		d.out = make([]byte, 0, 64<<10+64)
	}
	for {
		out, err := lzo.Decompress(d.out, body)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, lzo.ErrOutputOverrun) || cap(d.out) >= maxDecoded {
			return nil, fmt.Errorf("%w: %v", ErrCompression, err)
		}
		d.out = make([]byte, 0, min(2*cap(d.out), maxDecoded))
	}
}

func (d *decoder) zstdFrame(body []byte) ([]byte, error) {
	if d.zstd == nil {
		z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecoded))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCompression, err)
		}
		d.zstd = z
	}
	out, err := d.zstd.DecodeAll(body, d.out[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCompression, err)
	}
	d.out = out
	return out, nil
}
