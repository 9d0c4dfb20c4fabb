//go:build unix

package diskspace

import "golang.org/x/sys/unix"

// statfs returns the bytes available to an unprivileged process (the
// reserved root blocks are not ours to fill) and the filesystem's size.
func statfs(dir string) (avail, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}
