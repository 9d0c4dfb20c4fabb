//go:build race

package replication

// raceEnabled: the race detector's sync.Pool drops a quarter of what is put
// back, at random, so pooled scratch is allocated again and allocation
// counts mean nothing under it.
const raceEnabled = true
