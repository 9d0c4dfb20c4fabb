package replication

import "sync/atomic"

// callers runs the coordinator's requests to peers on long-lived goroutines.
// A goroutine started per request began on a small stack and grew it, copy
// by copy, on its way down through the transport (runtime.newstack was 5.5%
// of a coordinator's CPU at pipeline 1); a worker keeps the stack it grew,
// as the transport's request workers do on the serving side.
//
// One pool serves every coordinator in the process, so that test processes
// with many clusters do not collect idle workers per node. Workers wait for
// work forever; up to maxCallers of them, beyond which a request gets a
// goroutine of its own as before.
var callers = callerPool{tasks: make(chan func())}

const maxCallers = 512

type callerPool struct {
	tasks   chan func() // unbuffered: a send succeeds only into an idle worker
	workers atomic.Int32
}

// run runs f on an idle worker, a new worker, or past the limit a goroutine
// of its own; it never waits for f.
func (p *callerPool) run(f func()) {
	select {
	case p.tasks <- f:
		return
	default:
	}
	if p.workers.Add(1) <= maxCallers {
		go p.work(f)
		return
	}
	p.workers.Add(-1)
	go f()
}

func (p *callerPool) work(f func()) {
	for {
		f()
		f = <-p.tasks
	}
}
