package applog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// dirState is what Open found in the directory.
type dirState struct {
	segs     []uint64 // ascending, above the snapshot
	snap     uint64   // upTo of the snapshot replayed; 0 = none
	hasSnap  bool
	setAside map[string]bool // names (without the .corrupt- suffix) set aside earlier
	nextSeg  uint64          // number of the segment Open creates
	prevLen  uint64          // valid length of nextSeg-1, 0 if it is gone
	size     int64           // bytes of the files kept
}

// recover reads the directory, removes what is superseded (tmp snapshots,
// older snapshots, segments a snapshot covers), and replays the rest. It
// changes nothing else on disk unless Salvage is on.
func (l *Log) recover(replay func([]byte) error) (*dirState, error) {
	fs, dir := l.opts.FS, l.opts.Dir
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("applog: list %s: %w", dir, err)
	}
	st := &dirState{setAside: map[string]bool{}}
	var segs, snaps []uint64
	// Files to delete once the whole log has replayed: a refused open
	// changes nothing.
	var superseded []string
	for _, name := range names {
		if i := strings.Index(name, corruptTag); i > 0 {
			st.setAside[name[:i]] = true
			continue
		}
		if strings.HasPrefix(name, snapPrefix) && strings.HasSuffix(name, tmpSuffix) {
			// A snapshot that never reached its rename: the segments it
			// would have replaced are all still here.
			superseded = append(superseded, name)
			continue
		}
		kind, n, ok := parseName(name)
		switch {
		case !ok:
		case kind == kindSegment:
			segs = append(segs, n)
		case kind == kindSnapshot:
			snaps = append(snaps, n)
		}
	}
	slices.Sort(segs)
	slices.Sort(snaps)

	// The newest snapshot wins.
	if len(snaps) > 0 {
		upTo := snaps[len(snaps)-1]
		size, ok, err := l.replaySnapshot(upTo, replay)
		if err != nil {
			return nil, err
		}
		if ok {
			// Only a valid snapshot supersedes: older snapshots and the
			// segments it covers are what a crash between its rename and
			// the cleanup left behind.
			for _, old := range snaps[:len(snaps)-1] {
				superseded = append(superseded, snapName(old))
			}
			for len(segs) > 0 && segs[0] <= upTo {
				superseded = append(superseded, segName(segs[0]))
				segs = segs[1:]
			}
			st.snap, st.hasSnap = upTo, true
			st.size += size
		}
	}
	// Every segment after the snapshot must be here or have been set aside
	// by the operator's salvage: a missing one means lost entries.
	want := uint64(1)
	if len(snaps) > 0 {
		// Valid or salvaged now, the newest snapshot covers up to here.
		want = snaps[len(snaps)-1] + 1
	} else if n, ok := l.setAsideSnapshot(st); ok {
		want = n + 1
	}
	for _, n := range segs {
		for ; want < n; want++ {
			if !st.setAside[segName(want)] {
				return nil, &CorruptError{Path: fs.PathJoin(dir, segName(want)), Err: errGap}
			}
		}
		want = n + 1
	}

	// Headers first: a segment's header says how long its predecessor is.
	hdrs := make([]header, len(segs))
	dropped := uint64(0)
	for i := 0; i < len(segs); i++ {
		h, size, err := l.readHeader(segName(segs[i]), kindSegment, segs[i])
		if err != nil && !isFormatErr(err) {
			return nil, err
		}
		if err != nil {
			last := i == len(segs)-1
			if last && size <= headerSize {
				// A segment created just before a crash, whose header never
				// reached the disk: it holds no entry, and Open creates
				// this number again.
				l.log.Warn("dropped a new segment with a torn header", "file", l.path(segName(segs[i])), "bytes", size)
				l.stats.tornTails.Add(1)
				dropped = segs[i]
				segs, hdrs = segs[:i], hdrs[:i]
				break
			}
			ce := &CorruptError{Path: l.path(segName(segs[i])), Offset: 0, Err: err}
			if !l.opts.Salvage {
				return nil, ce
			}
			l.salvage(ce, 0)
			hdrs[i] = header{} // no usable header: its prevLen is unknown
			continue
		}
		hdrs[i] = h
	}

	var buf []byte
	var lastLen uint64
	lastOK := false
	for i, n := range segs {
		if l.isSalvaged(l.path(segName(n))) {
			lastOK = false
			continue
		}
		limit := int64(0)
		if i+1 < len(segs) && segs[i+1] == n+1 {
			limit = int64(hdrs[i+1].prevLen)
		}
		last := i == len(segs)-1
		var valid int64
		valid, buf, err = l.replaySegment(n, limit, last, buf, replay)
		var ce *CorruptError
		switch {
		case errors.As(err, &ce) && l.opts.Salvage:
			l.salvage(ce, l.replayed)
			lastOK = false
			continue
		case err != nil:
			return nil, err
		}
		lastLen, lastOK = uint64(valid), true
		st.segs = append(st.segs, n)
		st.size += l.fileSize(segName(n))
	}
	switch {
	case len(segs) > 0:
		st.nextSeg = segs[len(segs)-1] + 1
		if lastOK {
			st.prevLen = lastLen
		}
	case dropped > 0:
		st.nextSeg = dropped
	case st.hasSnap:
		st.nextSeg = st.snap + 1
	default:
		st.nextSeg = want
	}
	for _, name := range superseded {
		if err := l.removeFile(name); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// setAsideSnapshot finds the number of a snapshot salvage set aside, so that
// the segments after it are not reported missing.
func (l *Log) setAsideSnapshot(st *dirState) (uint64, bool) {
	var best uint64
	ok := false
	for name := range st.setAside {
		if kind, n, valid := parseName(name); valid && kind == kindSnapshot && n >= best {
			best, ok = n, true
		}
	}
	return best, ok
}

func (l *Log) path(name string) string { return l.opts.FS.PathJoin(l.opts.Dir, name) }

func (l *Log) fileSize(name string) int64 {
	fi, err := l.opts.FS.Stat(l.path(name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (l *Log) removeFile(name string) error {
	if err := l.opts.FS.Remove(l.path(name)); err != nil {
		return fmt.Errorf("applog: remove superseded %s: %w", name, err)
	}
	l.log.Info("removed superseded log file", "file", name)
	return nil
}

// readHeader reads and checks a file's header; size is the file's size.
func (l *Log) readHeader(name string, kind byte, num uint64) (header, int64, error) {
	f, err := l.opts.FS.Open(l.path(name))
	if err != nil {
		return header{}, 0, fmt.Errorf("applog: open %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return header{}, 0, err
	}
	var b [headerSize]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return header{}, fi.Size(), errShortHeader
		}
		return header{}, fi.Size(), err
	}
	h, err := decodeHeader(b[:])
	if err != nil {
		return h, fi.Size(), err
	}
	if h.kind != kind || h.num != num {
		return h, fi.Size(), errBadKind
	}
	return h, fi.Size(), nil
}

// replaySegment replays segment n. limit, when not 0, is the valid length the
// next segment recorded for it. It returns the segment's valid length.
func (l *Log) replaySegment(n uint64, limit int64, last bool, buf []byte, replay func([]byte) error) (int64, []byte, error) {
	name := segName(n)
	path := l.path(name)
	f, err := l.opts.FS.Open(path)
	if err != nil {
		return 0, buf, fmt.Errorf("applog: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, buf, fmt.Errorf("applog: stat %s: %w", path, err)
	}
	size := fi.Size()
	if cap(buf) < int(size) {
		buf = make([]byte, size)
	}
	data := buf[:size]
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return 0, buf, fmt.Errorf("applog: read %s: %w", path, err)
	}
	end := size
	short := false
	if limit > 0 {
		end = limit
		if limit > size {
			end, short = size, true
		}
	}
	l.replayed = 0
	off := int64(headerSize)
	for off < end {
		payload, sz, ferr := frameAt(data[off:end])
		if ferr != nil {
			if limit > 0 && errors.Is(ferr, errFrameShort) && !short {
				ferr = errPastPrevLen
			}
			if limit > 0 || !last {
				return 0, buf, &CorruptError{Path: path, Offset: off, Err: ferr}
			}
			if next := nextValidFrame(data, off+1); next >= 0 && !crashHole(data[off:next], off) {
				return 0, buf, &CorruptError{Path: path, Offset: off, Err: ferr}
			}
			l.log.Warn("truncated torn tail of the log",
				"file", path, "offset", off, "bytes_dropped", size-off, "reason", ferr)
			l.stats.tornTails.Add(1)
			return off, buf, nil
		}
		if err := replay(payload); err != nil {
			return 0, buf, fmt.Errorf("applog: replay %s offset %d: %w", path, off, err)
		}
		l.replayed++
		l.stats.replayed.Add(1)
		off += int64(sz)
	}
	if short {
		return 0, buf, &CorruptError{Path: path, Offset: size, Err: errShortFile}
	}
	if limit > 0 && size > limit {
		// A torn tail dropped by an earlier open, or a group whose write
		// failed (no caller was told it was stored); warned about then.
		l.log.Info("ignored bytes past the segment end its successor recorded",
			"file", path, "offset", limit, "bytes", size-limit)
	}
	return end, buf, nil
}

// nextValidFrame returns the offset of the first valid frame at or after
// from, or -1.
func nextValidFrame(data []byte, from int64) int64 {
	for o := from; o+frameHeader <= int64(len(data)); o++ {
		if _, _, err := frameAt(data[o:]); err == nil {
			return o
		}
	}
	return -1
}

// crashHole says whether region (starting at file offset base) holds a whole
// 512-byte sector of zeros: what a power loss leaves where unsynced blocks
// never reached the disk. Random damage does not look like that.
func crashHole(region []byte, base int64) bool {
	const sector = 512
	start := (base + sector - 1) / sector * sector
	for s := start; s+sector <= base+int64(len(region)); s += sector {
		blk := region[s-base : s-base+sector]
		zero := true
		for _, c := range blk {
			if c != 0 {
				zero = false
				break
			}
		}
		if zero {
			return true
		}
	}
	return false
}

// replaySnapshot replays the snapshot covering segments <= upTo. A snapshot
// is fsynced before its rename, so any damage at all is corruption. ok is
// false when salvage set it aside.
func (l *Log) replaySnapshot(upTo uint64, replay func([]byte) error) (size int64, ok bool, err error) {
	name := snapName(upTo)
	path := l.path(name)
	_, size, err = l.readHeader(name, kindSnapshot, upTo)
	var entries uint64
	var ce *CorruptError
	if err != nil && !isFormatErr(err) {
		return 0, false, err
	}
	if err != nil {
		ce = &CorruptError{Path: path, Offset: 0, Err: err}
	} else if entries, err = l.readSnapshotFrames(path, size, replay); err != nil && !errors.As(err, &ce) {
		return 0, false, err
	}
	if ce != nil {
		if !l.opts.Salvage {
			return 0, false, ce
		}
		l.salvage(ce, int64(entries))
		return 0, false, nil
	}
	return size, true, nil
}

func (l *Log) readSnapshotFrames(path string, size int64, replay func([]byte) error) (uint64, error) {
	f, err := l.opts.FS.Open(path)
	if err != nil {
		return 0, fmt.Errorf("applog: open %s: %w", path, err)
	}
	defer f.Close()
	end := size - footerSize
	if end < headerSize {
		return 0, &CorruptError{Path: path, Offset: headerSize, Err: errFooter}
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, headerSize, end-headerSize), 1<<20)
	var hdr [frameHeader]byte
	var payload []byte
	var entries uint64
	off := int64(headerSize)
	for off < end {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return entries, &CorruptError{Path: path, Offset: off, Err: errFrameShort}
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		if n > MaxEntrySize || int64(n) > end-off-frameHeader {
			return entries, &CorruptError{Path: path, Offset: off, Err: errFrameLength}
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return entries, &CorruptError{Path: path, Offset: off, Err: errFrameShort}
		}
		crc := crc32.Update(crc32.Update(0, crcTable, hdr[0:4]), crcTable, payload)
		if crc != binary.LittleEndian.Uint32(hdr[4:8]) {
			return entries, &CorruptError{Path: path, Offset: off, Err: errFrameCRC}
		}
		if err := replay(payload); err != nil {
			return entries, fmt.Errorf("applog: replay %s offset %d: %w", path, off, err)
		}
		entries++
		l.stats.replayed.Add(1)
		off += frameHeader + int64(n)
	}
	var foot [footerSize]byte
	if _, err := f.ReadAt(foot[:], end); err != nil {
		return entries, &CorruptError{Path: path, Offset: end, Err: errFooter}
	}
	want, err := decodeFooter(foot[:])
	if err != nil {
		return entries, &CorruptError{Path: path, Offset: end, Err: err}
	}
	if want != entries {
		return entries, &CorruptError{Path: path, Offset: end,
			Err: fmt.Errorf("%w: footer counts %d entries, file holds %d", errFooter, want, entries)}
	}
	return entries, nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("applog: open dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("applog: sync dir %s: %w", dir, err)
	}
	return nil
}
