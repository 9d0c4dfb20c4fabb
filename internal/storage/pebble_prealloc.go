package storage

import "github.com/cockroachdb/pebble/v2/vfs"

// walPreallocateMax caps what Pebble reserves ahead of a WAL's writes.
// Pebble preallocates 110% of the memtable size for every WAL file (70 MiB
// with the default 64 MiB memtable) and keeps recycled WALs at that size, so
// an idle node held hundreds of megabytes of reserved, empty space (issue
// 32). A few MiB keep most of the benefit (the metadata of a file that grows
// within its reservation need not be synced) while an idle WAL stays small;
// past the cap the file grows as it is written.
const walPreallocateMax = 4 << 20

// preallocCapFS hands Pebble files whose Preallocate reserves at most
// walPreallocateMax bytes from the start of the file.
type preallocCapFS struct{ vfs.FS }

func (fs preallocCapFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	return preallocCapFile{f}, nil
}

func (fs preallocCapFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return preallocCapFile{f}, nil
}

type preallocCapFile struct{ vfs.File }

func (f preallocCapFile) Preallocate(offset, length int64) error {
	if offset >= walPreallocateMax {
		return nil
	}
	return f.File.Preallocate(offset, min(length, walPreallocateMax-offset))
}
