// Package testproc runs ringkv server processes for the tests that need real
// ones (tests/e2e, tests/badinput). It builds the binary once per test
// package, starts every listener of a node on port 0 with --addr-file, and
// reads back the ports the kernel gave it: no port is guessed, so no other
// process can take one between the guess and the bind. A node keeps its
// ports across restarts, since its peers know it by them. It also starts
// redis-server, which cannot listen on a port the kernel picks (redis.go),
// and reads a node's metrics.
//
// Only test files may import it: it is not part of any program.
package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Main is the TestMain of a package whose tests run the ringkv binary: it
// builds it into a temporary directory, points *binary at it, calls setUp
// (nil: none) with that directory for files every test shares, runs the
// tests, removes the directory and exits with the tests' code.
func Main(m *testing.M, binary *string, setUp func(dir string) error) {
	dir, err := os.MkdirTemp("", "ringkv-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *binary, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if setUp != nil {
		if err := setUp(dir); err != nil {
			fmt.Fprintln(os.Stderr, "setting up the tests:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build compiles cmd/ringkv into dir and returns the binary's path. The go
// command's output goes to stderr, where a compile error is wanted.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "ringkv")
	build := exec.Command("go", "build", "-o", bin, "github.com/ringkv/ringkv/cmd/ringkv")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building ringkv: %w", err)
	}
	return bin, nil
}

// HashPassword asks the binary for the hash of pw, as an operator makes the
// entries of a users file.
func HashPassword(tb testing.TB, binary, pw string) string {
	tb.Helper()
	cmd := exec.Command(binary, "hash-password")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ringkv hash-password: %v", err)
	}
	return strings.TrimSpace(string(out))
}
