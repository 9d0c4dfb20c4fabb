package applog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

const (
	headerSize  = 32
	frameHeader = 8
	footerSize  = 16
	version     = 1

	kindSegment  = 1
	kindSnapshot = 2

	// MaxEntrySize bounds one entry. A frame length is 32 bits; the bound is
	// lower so that a corrupt length can never ask replay for gigabytes.
	MaxEntrySize = 1 << 30

	segPrefix  = "log-"
	segSuffix  = ".seg"
	snapPrefix = "snap-"
	snapSuffix = ".snap"
	tmpSuffix  = ".tmp"
	corruptTag = ".corrupt-"
	lockName   = "LOCK"
)

var (
	magic       = [4]byte{'R', 'K', 'V', 'L'}
	footerMagic = [4]byte{'R', 'K', 'V', 'E'}
	crcTable    = crc32.MakeTable(crc32.Castagnoli)
)

func segName(n uint64) string  { return fmt.Sprintf("%s%012d%s", segPrefix, n, segSuffix) }
func snapName(n uint64) string { return fmt.Sprintf("%s%012d%s", snapPrefix, n, snapSuffix) }

// parseName recognises a segment or snapshot file name. Anything else (tmp
// files, set-aside files, the LOCK) is not a log file.
func parseName(name string) (kind int, n uint64, ok bool) {
	var digits string
	switch {
	case strings.HasPrefix(name, segPrefix) && strings.HasSuffix(name, segSuffix):
		kind, digits = kindSegment, name[len(segPrefix):len(name)-len(segSuffix)]
	case strings.HasPrefix(name, snapPrefix) && strings.HasSuffix(name, snapSuffix):
		kind, digits = kindSnapshot, name[len(snapPrefix):len(name)-len(snapSuffix)]
	default:
		return 0, 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || len(digits) != 12 {
		return 0, 0, false
	}
	return kind, n, true
}

type header struct {
	kind    byte
	num     uint64
	prevLen uint64
}

func (h header) encode(b []byte) []byte {
	var buf [headerSize]byte
	copy(buf[0:4], magic[:])
	binary.LittleEndian.PutUint16(buf[4:6], version)
	buf[6] = h.kind
	binary.LittleEndian.PutUint64(buf[8:16], h.num)
	binary.LittleEndian.PutUint64(buf[16:24], h.prevLen)
	binary.LittleEndian.PutUint32(buf[28:32], crc32.Checksum(buf[:28], crcTable))
	return append(b, buf[:]...)
}

var (
	errShortHeader = errors.New("applog: file shorter than its header")
	errBadMagic    = errors.New("applog: bad magic (not a ringkv log file)")
	errBadVersion  = errors.New("applog: unknown format version")
	errHeaderCRC   = errors.New("applog: header checksum mismatch")
	errBadKind     = errors.New("applog: header names the wrong file kind or number")
	errFrameCRC    = errors.New("applog: frame checksum mismatch")
	errFrameShort  = errors.New("applog: frame cut short")
	errFrameLength = errors.New("applog: frame length out of range")
	errFooter      = errors.New("applog: snapshot footer missing or damaged")
	errPastPrevLen = errors.New("applog: frame runs past the length the next segment recorded")
	errShortFile   = errors.New("applog: file shorter than the length the next segment recorded")
	errGap         = errors.New("applog: segment missing between snapshot and last segment")
)

// isFormatErr tells damage (CorruptError material) from I/O failure.
func isFormatErr(err error) bool {
	for _, e := range []error{errShortHeader, errBadMagic, errBadVersion, errHeaderCRC, errBadKind} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, errShortHeader
	}
	if [4]byte(b[0:4]) != magic {
		return header{}, errBadMagic
	}
	if crc32.Checksum(b[:28], crcTable) != binary.LittleEndian.Uint32(b[28:32]) {
		return header{}, errHeaderCRC
	}
	if v := binary.LittleEndian.Uint16(b[4:6]); v != version {
		return header{}, fmt.Errorf("%w %d", errBadVersion, v)
	}
	return header{
		kind:    b[6],
		num:     binary.LittleEndian.Uint64(b[8:16]),
		prevLen: binary.LittleEndian.Uint64(b[16:24]),
	}, nil
}

// appendFrame encodes one entry. The checksum covers the length so that a
// damaged length is caught before it is trusted.
func appendFrame(b, payload []byte) []byte {
	// The length is checksummed from b itself: a local array handed to
	// crc32 escapes to the heap, one allocation per entry.
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	crc := crc32.Update(crc32.Update(0, crcTable, b[start:start+4]), crcTable, payload)
	b = binary.LittleEndian.AppendUint32(b, crc)
	return append(b, payload...)
}

// frameAt checks the frame at b[0:]. It returns the payload and the frame's
// total size, or an error saying why no valid frame starts there.
func frameAt(b []byte) (payload []byte, size int, err error) {
	if len(b) < frameHeader {
		return nil, 0, errFrameShort
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n > MaxEntrySize {
		return nil, 0, errFrameLength
	}
	if int(n) > len(b)-frameHeader {
		return nil, 0, errFrameShort
	}
	payload = b[frameHeader : frameHeader+int(n)]
	crc := crc32.Update(crc32.Update(0, crcTable, b[0:4]), crcTable, payload)
	if crc != binary.LittleEndian.Uint32(b[4:8]) {
		return nil, 0, errFrameCRC
	}
	return payload, frameHeader + int(n), nil
}

func encodeFooter(b []byte, entries uint64) []byte {
	var buf [footerSize]byte
	binary.LittleEndian.PutUint64(buf[0:8], entries)
	copy(buf[8:12], footerMagic[:])
	binary.LittleEndian.PutUint32(buf[12:16], crc32.Checksum(buf[:12], crcTable))
	return append(b, buf[:]...)
}

func decodeFooter(b []byte) (entries uint64, err error) {
	if len(b) != footerSize || [4]byte(b[8:12]) != footerMagic ||
		crc32.Checksum(b[:12], crcTable) != binary.LittleEndian.Uint32(b[12:16]) {
		return 0, errFooter
	}
	return binary.LittleEndian.Uint64(b[0:8]), nil
}

// CorruptError reports damage replay will not repair on its own: the file and
// the byte offset where the first bad header, frame or footer starts.
type CorruptError struct {
	Path   string
	Offset int64
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("applog: corrupt log file %s at offset %d: %v", e.Path, e.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }
