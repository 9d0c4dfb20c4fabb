package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	"github.com/ringkv/ringkv/internal/storage/applog"
)

// checkPebbleWAL reads every WAL file in dir before pebble.Open does, and
// returns an *applog.CorruptError naming the file and offset when one is
// damaged in a way that is not a torn tail (issue 29, case 4).
//
// Pebble stops replaying the last WAL at the first bad chunk unless a later
// chunk proves the damage (its read-ahead), and then deletes the file once
// the memtable is flushed: a WAL overwritten with random bytes replays as
// empty, and the node serves an empty store. A real torn tail looks
// different: the bytes after the last good record are zeros (blocks that
// never reached the disk), the end of the file, or chunks of an older log
// the file was recycled from. So besides Pebble's own verdict, damage whose
// region holds none of those, only bytes that are neither zero nor a chunk,
// is corruption.
//
// The engine calls it before pebble.Open (Options.FS and the data directory,
// where ringkv keeps its WAL), and refuses to start on an error.
func checkPebbleWAL(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return fmt.Errorf("storage: list %s: %w", dir, err)
	}
	for _, name := range names {
		num, _, ok := wal.ParseLogFilename(name)
		if !ok {
			continue
		}
		if err := checkWALFile(fs, fs.PathJoin(dir, name), uint64(num)); err != nil {
			return err
		}
	}
	return nil
}

// newRecordReader calls record.NewReader with the log number in the type its
// signature asks for, which lives in a Pebble internal package.
func newRecordReader[N ~uint64](newReader func(io.Reader, N) *record.Reader, r io.Reader, num uint64) *record.Reader {
	return newReader(r, N(num))
}

func checkWALFile(fs vfs.FS, path string, num uint64) error {
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("storage: open WAL %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("storage: read WAL %s: %w", path, err)
	}
	rr := newRecordReader(record.NewReader, bytesReader(data), num)
	for {
		start := rr.Offset()
		rec, err := rr.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, record.ErrInvalidChunk), errors.Is(err, record.ErrZeroedChunk):
			// Pebble read ahead and found records past the damage.
			return &applog.CorruptError{Path: path, Offset: start, Err: err}
		case errors.Is(err, record.ErrUnexpectedEOF):
			if overwritten(data, start, num) {
				return &applog.CorruptError{Path: path, Offset: start,
					Err: errors.New("storage: WAL bytes past the last good record are neither a torn write nor an older log")}
			}
			return nil
		default:
			return fmt.Errorf("storage: read WAL %s: %w", path, err)
		}
	}
}

// bytesReader avoids bytes.Reader's Seek, which record.Reader would use.
type bytesReaderT struct{ b []byte }

func bytesReader(b []byte) io.Reader { return &bytesReaderT{b} }

func (r *bytesReaderT) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

const (
	walBlockSize = 32 << 10
	walSector    = 512
	// walChunkScan bounds the byte-by-byte search for a chunk of an older
	// log right after the damage; past it only block starts are checked.
	walChunkScan = 64 << 10
)

// overwritten says whether data[from:], where the log of number num stops
// replaying, was written over rather than torn. A zero sector means blocks
// that never reached the disk (a crash); a later chunk of this log means
// records past the damage; a chunk of another log means a recycled file's
// old content; bytes that are none of these were overwritten.
func overwritten(data []byte, from int64, num uint64) bool {
	if int64(len(data))-from < walSector {
		return false
	}
	for s := (from + walSector - 1) / walSector * walSector; s+walSector <= int64(len(data)); s += walSector {
		if allZero(data[s : s+walSector]) {
			return false
		}
	}
	older := false
	for o := from + 1; o < int64(len(data)); o++ {
		if o-from > walChunkScan && o%walBlockSize != 0 {
			o = (o/walBlockSize+1)*walBlockSize - 1
			continue
		}
		switch logNum, ok := walChunkAt(data, o); {
		case !ok:
		case logNum == uint32(num):
			return true
		default:
			older = true
		}
	}
	return !older
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// walChunkAt says whether a valid Pebble record chunk (any of the legacy,
// recyclable and WAL-sync formats) starts at data[o], and its log number
// (the low 32 bits; the legacy format has none and reports 0). The layout is
// checksum(4) length(2) type(1) [log number(4) [sync offset(8)]] payload,
// the checksum a masked CRC-32C from the type byte to the end.
func walChunkAt(data []byte, o int64) (logNum uint32, ok bool) {
	if o+7 > int64(len(data)) {
		return 0, false
	}
	typ := data[o+6]
	var hdr int64
	switch {
	case typ >= 1 && typ <= 4:
		hdr = 7
	case typ >= 5 && typ <= 8:
		hdr = 11
	case typ >= 9 && typ <= 12:
		hdr = 19
	default:
		return 0, false
	}
	n := int64(binary.LittleEndian.Uint16(data[o+4 : o+6]))
	end := o + hdr + n
	if end > int64(len(data)) || end-(o/walBlockSize*walBlockSize) > walBlockSize {
		return 0, false
	}
	c := crc32.Update(0, walCRCTable, data[o+6:end])
	if (c>>15|c<<17)+0xa282ead8 != binary.LittleEndian.Uint32(data[o:o+4]) {
		return 0, false
	}
	if hdr > 7 {
		logNum = binary.LittleEndian.Uint32(data[o+7 : o+11])
	}
	return logNum, true
}

var walCRCTable = crc32.MakeTable(crc32.Castagnoli)
