package cli

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/pki"
)

// nodeClientKey holds, in a command's context, the HTTP client that reaches
// a node over TLS; without one a command speaks plain HTTP.
type nodeClientKey struct{}

// addNodeTLSFlags gives a command that talks to a node --tls-ca, --tls-cert
// and --tls-key. Set, the node's HTTP port is reached over HTTPS, verified
// against --tls-ca, presenting the client certificate when one is given
// (for nodes run with --tls-require-client-cert). The client travels in the
// command's context, so every call the command makes uses it.
func addNodeTLSFlags(cmd *cobra.Command) {
	var f pki.Files
	cmd.Flags().StringVar(&f.CA, "tls-ca", "", "CA (PEM) that verifies the node's certificate; set, the node is reached over HTTPS")
	cmd.Flags().StringVar(&f.Cert, "tls-cert", "", "client certificate (PEM) to present, for nodes that require one")
	cmd.Flags().StringVar(&f.Key, "tls-key", "", "private key (PEM) of --tls-cert")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(c, args); err != nil {
				return err
			}
		}
		if f == (pki.Files{}) {
			return nil
		}
		if f.CA == "" {
			return usageError{err: errNeedTLSCA, cmd: c.CommandPath()}
		}
		tc, err := pki.ClientConfig(f)
		if err != nil {
			return err
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, TLSHandshakeTimeout: 10 * time.Second}}
		c.SetContext(context.WithValue(c.Context(), nodeClientKey{}, hc))
		return nil
	}
}

// nodeClient is the HTTP client a command reaches nodes with, and the
// scheme an address without one gets.
func nodeClient(ctx context.Context) (hc *http.Client, scheme string) {
	if hc, ok := ctx.Value(nodeClientKey{}).(*http.Client); ok {
		return hc, "https://"
	}
	return http.DefaultClient, "http://"
}

var errNeedTLSCA = errors.New("--tls-cert and --tls-key need --tls-ca to verify the node with")
