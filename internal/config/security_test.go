package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPeerPortsNeedProtectionOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // flags the error must name; none: valid
	}{
		{"loopback needs nothing", func(c *Config) {}, nil},
		{"open peer port", func(c *Config) { c.PeerAddr = "10.0.0.7:7380" }, []string{"--peer-addr", "--insecure"}},
		{"open gossip port", func(c *Config) { c.GossipAddr = "0.0.0.0:7946" }, []string{"--gossip-addr", "--insecure"}},
		{"protected", func(c *Config) {
			c.PeerAddr, c.GossipAddr = "10.0.0.7:7380", "10.0.0.7:7946"
			c.PeerTLSCert, c.PeerTLSKey, c.PeerTLSCA, c.GossipKeyFile = "a.crt", "a.key", "ca.crt", "g.keys"
		}, nil},
		{"insecure", func(c *Config) { c.PeerAddr, c.GossipAddr, c.Insecure = "10.0.0.7:7380", "10.0.0.7:7946", true }, nil},
		{"partial TLS", func(c *Config) { c.PeerTLSCert, c.PeerTLSKey = "a.crt", "a.key" }, []string{"--peer-tls-cert", "all three"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testDefault()
			tc.mod(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed, want an error naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestReadGossipKeys(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	k32 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "keys")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := ReadGossipKeys(write("# new key first\n" + k32 + "\n\n  " + k16 + "  \n"))
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("ReadGossipKeys = %d keys, %v; want the 32-byte key then the 16-byte one", len(keys), err)
	}
	for name, body := range map[string]string{
		"empty":      "# nothing\n",
		"not base64": "not-base64!\n",
		"wrong size": base64.StdEncoding.EncodeToString(make([]byte, 20)) + "\n",
	} {
		if _, err := ReadGossipKeys(write(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ReadGossipKeys(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
