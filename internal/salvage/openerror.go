package salvage

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringkv/ringkv/internal/storage/applog"
)

// OpenError explains the store's refusal to open over corruption: the
// returned error wraps err and names the file and offset, and tells the
// operator the way out. Any other error is returned as it is.
func OpenError(err error) error {
	file, off, ok := corruption(err)
	if !ok {
		return err
	}
	where := "the storage files"
	if file != "" {
		where = file
		if off >= 0 {
			where = fmt.Sprintf("%s at offset %d", file, off)
		}
	}
	return fmt.Errorf("%w\n"+
		"the data in %s is corrupt beyond a torn tail; refusing to start rather than drop it in silence.\n"+
		"Restart with --salvage to set the corrupt file aside, keep the records before the corruption and "+
		"restore this node's ranges from its replicas before it reports ready (memory engine; a Pebble store "+
		"cannot be salvaged: move its data directory aside, start empty and run `ringkv repair`; "+
		"docs/operations.md, \"A corrupt log\")",
		err, where)
}

// corruption reports whether err is the store refusing to open over
// corruption, and where: offset -1 when unknown, file "" when unknown. The
// memory engine's log, and the Pebble engine's WAL check, name the file and
// offset; Pebble's own check of its sstables does not.
func corruption(err error) (file string, offset int64, ok bool) {
	var ce *applog.CorruptError
	if errors.As(err, &ce) {
		return ce.Path, ce.Offset, true
	}
	if errors.Is(err, pebble.ErrCorruption) {
		return "", -1, true
	}
	return "", 0, false
}
