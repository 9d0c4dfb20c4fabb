//go:build !unix

package diskspace

import "errors"

func statfs(string) (avail, total uint64, err error) {
	return 0, 0, errors.New("free space is not measured on this platform")
}
