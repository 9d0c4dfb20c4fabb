package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/pki"
)

// Default validities: a CA outlives the certificates it signs several times
// over, so certificates can be reissued without touching every node's CA file.
const (
	defaultCAValidity   = 10 * 365 * 24 * time.Hour
	defaultLeafValidity = 2 * 365 * 24 * time.Hour
)

// certOptions are the flags every `ringkv cert` subcommand shares.
type certOptions struct {
	dir      string
	name     string
	hosts    []string
	validity time.Duration
	force    bool
}

func newCertCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Make a cluster CA and the certificates its nodes and clients use",
		Long: `Make the certificates ringkv's TLS needs, in one directory:

  ca      a cluster CA: ca.crt (give it to every node and client) and ca.key
          (keep it off the nodes once the certificates are made)
  node    a node's peer certificate: it serves the peer port and dials the
          other nodes with it (--peer-tls-cert, --peer-tls-key, --peer-tls-ca)
  server  a certificate for the client (RESP) and HTTP ports (--tls-cert,
          --tls-key); --host must name every address clients use
  client  a client certificate, for a server run with --tls-ca

Every file is written into --dir; keys are mode 0600. An operator's own CA
works as well: ringkv only needs PEM files.`,
		Example: `  ringkv cert ca --dir certs
  ringkv cert node --dir certs --name n1 --host 10.0.0.1,n1.example.com
  ringkv cert server --dir certs --name n1-client --host 10.0.0.1,localhost,127.0.0.1
  ringkv cert client --dir certs --name alice`,
		Args: noArgs,
	}
	cmd.AddCommand(
		newCertCACommand(),
		newCertLeafCommand("node", pki.Peer, "a node's peer certificate (serves and dials the peer port)"),
		newCertLeafCommand("server", pki.Server, "a certificate for the client and HTTP ports"),
		newCertLeafCommand("client", pki.Client, "a client certificate"),
	)
	return cmd
}

func newCertCACommand() *cobra.Command {
	var o certOptions
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make a cluster CA (ca.crt, ca.key) in --dir",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.dir == "" {
				return usageError{err: errors.New("--dir is required"), cmd: cmd.CommandPath()}
			}
			if o.validity <= 0 {
				return usageError{err: fmt.Errorf("--validity %s: want a positive duration", o.validity), cmd: cmd.CommandPath()}
			}
			// A second CA over the first would orphan every certificate it
			// signed: every node would then refuse every other.
			if !o.force {
				if err := refuseExisting(filepath.Join(o.dir, "ca.key")); err != nil {
					return err
				}
			}
			ca, err := pki.NewCA(o.name, o.validity)
			if err != nil {
				return err
			}
			if err := ca.WriteCA(o.dir); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s and %s\n", filepath.Join(o.dir, "ca.crt"), filepath.Join(o.dir, "ca.key"))
			fmt.Fprintln(out, "ca.crt goes to every node and client; keep ca.key off the nodes.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory to write ca.crt and ca.key into (created if missing)")
	f.StringVar(&o.name, "name", "ringkv-ca", "the CA's common name")
	f.DurationVar(&o.validity, "validity", defaultCAValidity, "how long the CA is valid")
	f.BoolVar(&o.force, "force", false, "replace an existing CA (every certificate it signed stops working)")
	return cmd
}

func newCertLeafCommand(use string, usage pki.Usage, short string) *cobra.Command {
	var o certOptions
	cmd := &cobra.Command{
		Use:   use,
		Short: "Make " + short + ", signed by the CA in --dir",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkLeaf(usage); err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			ca, err := pki.LoadCA(o.dir)
			if err != nil {
				return fmt.Errorf("loading the CA (make it with `ringkv cert ca --dir %s`): %w", o.dir, err)
			}
			if !o.force {
				for _, ext := range []string{".crt", ".key"} {
					if err := refuseExisting(filepath.Join(o.dir, o.name+ext)); err != nil {
						return err
					}
				}
			}
			files, err := ca.IssueFiles(o.dir, o.name, o.hosts, usage, o.validity)
			if err != nil {
				return err
			}
			printCertFlags(cmd.OutOrStdout(), use, files)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory holding the CA; the certificate and key are written there as NAME.crt and NAME.key")
	f.StringVar(&o.name, "name", "", "the certificate's common name and file name (a node's id, a user's name)")
	if usage&pki.Server != 0 {
		f.StringSliceVar(&o.hosts, "host", nil, "IP addresses and DNS names the certificate is valid for, comma-separated")
	}
	f.DurationVar(&o.validity, "validity", defaultLeafValidity, "how long the certificate is valid")
	f.BoolVar(&o.force, "force", false, "replace an existing certificate of that name")
	return cmd
}

func (o certOptions) checkLeaf(usage pki.Usage) error {
	switch {
	case o.dir == "":
		return errors.New("--dir is required")
	case o.name == "":
		return errors.New("--name is required")
	case o.name == "ca" || o.name == "." || o.name == ".." || strings.ContainsAny(o.name, `/\`):
		// The name is a file name next to ca.crt and ca.key.
		return fmt.Errorf("--name %q: want a plain name other than \"ca\"", o.name)
	case o.validity <= 0:
		return fmt.Errorf("--validity %s: want a positive duration", o.validity)
	}
	// A node's peer certificate is checked against the CA only (pki.PeerConfigs),
	// so it may name no host; a server certificate without one verifies for
	// no client.
	if usage == pki.Server && len(o.hosts) == 0 {
		return errors.New("--host is required: name every address clients connect to")
	}
	return nil
}

// refuseExisting fails when path exists, so that a command never silently
// overwrites a key.
func refuseExisting(path string) error {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return fmt.Errorf("%s exists; pass --force to replace it", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return err
	}
}

// printCertFlags says which files were written and the flags that use them.
func printCertFlags(w io.Writer, use string, f pki.Files) {
	fmt.Fprintf(w, "wrote %s and %s\n", f.Cert, f.Key)
	switch use {
	case "node":
		fmt.Fprintf(w, "ringkv server flags: --peer-tls-cert %s --peer-tls-key %s --peer-tls-ca %s\n", f.Cert, f.Key, f.CA)
	case "server":
		fmt.Fprintf(w, "ringkv server flags: --tls-cert %s --tls-key %s\n", f.Cert, f.Key)
	case "client":
		fmt.Fprintf(w, "client flags: --tls-ca %s --tls-cert %s --tls-key %s\n", f.CA, f.Cert, f.Key)
	}
}
