// Package deploy tests what deploy/ ships, for real: the container image and
// the compose cluster are built and run on Docker (compose_test.go), the
// Kubernetes manifests are parsed and held to the flags they pass
// (kubernetes_test.go), and the example configuration is held to
// `ringkv server --help` (config_test.go). Docker being unusable fails the
// compose test: it must not pass by skipping.
package deploy
