// Package scenarios runs the chaos suite: workloads from traffic, faults from
// failpoint and verdicts from checker, against a cluster of real ringkv
// binaries in Docker containers (docker_test.go, behind the `docker` build
// tag: make test-docker) and against an in-process cluster of the real
// components on the fault transport (sim_test.go). Every
// run prints its seed and a summary table; RINGKV_CHAOS_SEED reruns a seed and
// RINGKV_CHAOS_DURATION sets how long the workloads run (make chaos: 10m).
package scenarios
