package cli

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"
)

// Environment variables the commands that talk to a node read their
// credentials from when the flags are not given; RINGKV_PASSWORD is also the
// server's --password, so one variable serves a node and its operator.
const (
	envUser     = "RINGKV_USER"
	envPassword = "RINGKV_PASSWORD"
)

// creds are the credentials a command sends to a node: HTTP Basic on the
// HTTP port, AUTH on the RESP port. An empty password sends none.
type creds struct{ user, password string }

type credsKey struct{}

// addCredFlags registers --user and --password on cmd; resolveCreds reads
// them, or the environment where they were not given.
func addCredFlags(cmd *cobra.Command, c *creds) {
	cmd.Flags().StringVar(&c.user, "user", "", "user to authenticate as (default: the \"default\" user of the node's --password; env "+envUser+")")
	cmd.Flags().StringVar(&c.password, "password", "", "password to authenticate with (prefer env "+envPassword+": other users can read command lines)")
}

func resolveCreds(cmd *cobra.Command, e *env, c creds) creds {
	if !cmd.Flags().Changed("user") {
		if v, ok := e.lookupEnv(envUser); ok {
			c.user = v
		}
	}
	if !cmd.Flags().Changed("password") {
		if v, ok := e.lookupEnv(envPassword); ok {
			c.password = v
		}
	}
	return c
}

// withCreds makes the node calls under ctx (getJSON, postJSON, postAdmin)
// send c.
func withCreds(ctx context.Context, c creds) context.Context {
	return context.WithValue(ctx, credsKey{}, c)
}

// authorize sets req's credentials from its context, and marks a request
// with a method that changes state as JSON: the node refuses other content
// types there, which is how it tells a script from a cross-site form.
func authorize(req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	c, _ := req.Context().Value(credsKey{}).(creds)
	if c.password == "" {
		return
	}
	user := c.user
	if user == "" {
		user = "default"
	}
	req.SetBasicAuth(user, c.password)
}
