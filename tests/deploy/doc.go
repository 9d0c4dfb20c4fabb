// Package deploy tests what deploy/ ships, for real: the container image and
// the compose cluster are built and run on Docker (compose_test.go), the
// Kubernetes manifests are parsed and held to the flags they pass
// (kubernetes_test.go), the example configuration is held to
// `ringkv server --help` (config_test.go), and the commands and flags that
// README.md and docs/ name are held to the binary's (docs_test.go). The
// compose test is behind the `docker` build tag (make test-docker), so
// `make test` needs no Docker; with the tag, Docker being unusable fails it:
// it must not pass by skipping.
package deploy
