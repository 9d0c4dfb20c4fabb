// Package sockio reads and writes sockets with raw system calls, so that a
// socket call does not hand its processor to another thread.
//
// Go wraps every read(2) and write(2) of a net.Conn in the scheduler's
// entersyscall and exitsyscall. When such a call outlasts one tick of the
// runtime's sysmon thread (20 µs), sysmon takes the processor away and
// starts or wakes another thread to run it; the caller, back from the
// kernel, has to find a processor again. On loopback a write runs the
// receiver's TCP processing too and takes about 30 µs on the paravirtualised
// machines ringkv is measured on, so under load nearly every write of a busy
// node was followed by a thread hand-off, and sysmon stayed at its shortest
// sleep (docs/design.md, "Socket calls without a thread hand-off"; the figures are
// in docs/performance.md).
//
// A socket of a net.Conn is non-blocking, so its calls return at once with
// EAGAIN instead of blocking: they are safe to make raw, and when one would
// block, Conn waits on Go's poller as net.Conn does, deadlines included.
// Each raw call moves at most maxRaw bytes, which bounds how long it keeps
// its processor (and a garbage collection waiting for it).
package sockio
