//go:build docker

package scenarios

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The faults on a node's files: the Docker cluster keeps each node's data
// directory on the host (dockerCluster.hostDir), so a stopped node's files
// can be damaged from here.

// CorruptLog stops node i at once, writes random bytes over the middle of
// its largest log segment, and starts it: the node must refuse to start and
// name the file. Its container is then made again with --salvage, as an
// operator would restart it; that node sets the damaged file aside and
// restores its ranges from the replicas before it reports ready, which
// Resume waits for.
func (c *dockerCluster) CorruptLog(ctx context.Context, i int, rnd *rand.Rand) (string, error) {
	if err := c.Kill(ctx, i); err != nil {
		return "", err
	}
	if _, err := docker(ctx, "wait", c.name(i)); err != nil {
		return "", err
	}
	segs, err := filepath.Glob(filepath.Join(c.hostDir(i), "log-*.seg"))
	if err != nil || len(segs) == 0 {
		return "", fmt.Errorf("n%d has no log segment in %s (%v)", i+1, c.hostDir(i), err)
	}
	var seg string
	var size int64
	for _, p := range segs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			seg, size = p, fi.Size()
		}
	}
	if size < 8<<10 {
		return "", fmt.Errorf("n%d's largest segment %s holds only %d bytes", i+1, seg, size)
	}
	// Past the header, in the middle, with valid frames after the damage:
	// nothing a torn write could leave.
	off := size/4 + rnd.Int64N(size/4)
	junk := make([]byte, 512)
	for j := range junk {
		junk[j] = byte(rnd.Uint32())
	}
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	_, err = f.WriteAt(junk, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	desc := fmt.Sprintf("corrupt n%d's %s at %d", i+1, filepath.Base(seg), off)
	if _, err := docker(ctx, "start", c.name(i)); err != nil {
		return desc, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	code, err := docker(wctx, "wait", c.name(i))
	if err != nil {
		return desc, fmt.Errorf("n%d did not stop on its corrupt log: %w", i+1, err)
	}
	logs, _ := dockerLogs(ctx, c.name(i), 20)
	if code == "0" || !strings.Contains(logs, filepath.Base(seg)) {
		return desc, fmt.Errorf("n%d started on a corrupt log (exit %s) or did not name %s:\n%s", i+1, code, filepath.Base(seg), logs)
	}
	if _, err := docker(ctx, "rm", c.name(i)); err != nil {
		return desc, err
	}
	c.mu.Lock()
	find := c.mu.find[i]
	c.mu.Unlock()
	return desc + ", refused, restarted with --salvage", c.run(ctx, i, find[0], find[1], "--salvage")
}

// Resume waits until node i, running with --salvage, has restored its
// ranges and is ready, then stops it and runs its container again with its
// usual flags: left with --salvage, a node would salvage the next damage
// instead of refusing to start.
func (c *dockerCluster) Resume(ctx context.Context, i int) error {
	ready := func(ctx context.Context) error { return c.ready(ctx, i) }
	if err := waitFor(ctx, 2*time.Minute, ready); err != nil {
		return fmt.Errorf("n%d never got ready after its salvage: %w", i+1, err)
	}
	if _, err := docker(ctx, "stop", "-t", "10", c.name(i)); err != nil {
		return err
	}
	if _, err := docker(ctx, "rm", c.name(i)); err != nil {
		return err
	}
	c.mu.Lock()
	find := c.mu.find[i]
	c.mu.Unlock()
	if err := c.run(ctx, i, find[0], find[1]); err != nil {
		return err
	}
	return waitFor(ctx, 2*time.Minute, ready)
}
