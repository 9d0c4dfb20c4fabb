package config

import (
	"fmt"
	"strings"
)

// InitialMember is one entry of --initial-cluster: a node id and the gossip
// address it listens on.
type InitialMember struct {
	ID         string
	GossipAddr string
}

// InitialMembers parses --initial-cluster. It returns nil when the flag is
// unset. Validate has checked the entries, so only a Config that skipped
// Validate gets an error.
//
// The flag names ids with their addresses, as etcd's --initial-cluster does,
// rather than only counting members as Consul's --bootstrap-expect does: a
// count is met by whichever nodes show up first, so a stray node started with
// the wrong seeds could complete a cluster in place of a named member, and a
// node could not tell which member it still waits for.
func (c *Config) InitialMembers() ([]InitialMember, error) {
	var out []InitialMember
	ids := map[string]bool{}
	addrs := map[string]string{}
	for _, e := range c.InitialCluster {
		id, addr, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%q: want id=host:port", e)
		}
		if _, err := checkAddr(addr); err != nil {
			return nil, err
		}
		if ids[id] {
			return nil, fmt.Errorf("node id %q is named twice", id)
		}
		if other, ok := addrs[addr]; ok {
			return nil, fmt.Errorf("%s and %s share the address %s", other, id, addr)
		}
		ids[id], addrs[addr] = true, id
		out = append(out, InitialMember{ID: id, GossipAddr: addr})
	}
	return out, nil
}

func (c *Config) checkInitialCluster() error {
	members, err := c.InitialMembers()
	if err != nil || len(members) == 0 {
		return err
	}
	for _, m := range members {
		if m.ID == c.NodeID {
			return nil
		}
	}
	return fmt.Errorf("does not name this node's --node-id %q", c.NodeID)
}
