package bench

import "time"

// schedule is one connection's share of an open-loop run: request i is
// intended to start at start + offset + i*interval, whether or not the
// server has answered the ones before it. Latency is measured from that
// intended time, so a stall delays the requests due during it and they count
// the wait, as wrk2 does; measuring from the actual send would hide the stall
// behind the few requests in flight when it began (coordinated omission).
type schedule struct {
	start    time.Time
	interval time.Duration
}

// newSchedule splits rate requests per second over conns connections and
// returns connection c's schedule. The connections' start times are staggered
// by interval/conns, so together they send evenly spaced requests instead of
// conns requests in a burst every interval.
func newSchedule(start time.Time, rate float64, conns, c int) schedule {
	interval := time.Duration(float64(time.Second) * float64(conns) / rate)
	if interval <= 0 {
		interval = 1 // faster than the clock can tell apart: send back to back
	}
	offset := interval * time.Duration(c) / time.Duration(conns)
	return schedule{start: start.Add(offset), interval: interval}
}

// at returns request i's intended start time.
func (s schedule) at(i int64) time.Time {
	return s.start.Add(time.Duration(i) * s.interval)
}

// due returns how many requests are due by now: those with an intended start
// time at or before now.
func (s schedule) due(now time.Time) int64 {
	if now.Before(s.start) {
		return 0
	}
	return int64(now.Sub(s.start)/s.interval) + 1
}
