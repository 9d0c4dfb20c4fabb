// Command ringkv is the single ringkv binary: the server, a local demo cluster
// and the admin commands. Everything lives in internal/cli; keep this thin.
package main

import (
	"os"

	"github.com/ringkv/ringkv/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
