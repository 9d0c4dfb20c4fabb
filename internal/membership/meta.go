package membership

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// State is a node's place in its lifecycle, chosen by the node itself (or an
// operator) and gossiped in its metadata. Whether a node is reachable is a
// separate matter, decided by the failure detector: see Member.Up.
type State uint8

const (
	// Joining nodes are receiving their ranges and do not serve reads yet.
	Joining State = iota
	// Normal nodes own their ranges.
	Normal
	// Leaving nodes are streaming their ranges away before decommission.
	Leaving
	// Removed nodes are out of the cluster; they no longer appear in Members.
	Removed
)

var stateNames = [...]string{"joining", "normal", "leaving", "removed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("membership: unknown state %q", s)
}

// Meta is what a node tells the cluster about itself.
type Meta struct {
	ID         string
	Zone       string
	ClientAddr string // RESP
	PeerAddr   string // node-to-node transport
	HTTPAddr   string
	State      State
}

// metaVersion leads every encoded Meta so the format can grow: a decoder
// reads the fields it knows and ignores trailing ones it does not.
const metaVersion = 1

// ErrMetaTooLarge is returned when a node's metadata does not fit memberlist's
// per-node limit.
var ErrMetaTooLarge = fmt.Errorf("membership: metadata larger than %d bytes", memberlist.MetaMaxSize)

var errBadMeta = errors.New("membership: malformed metadata")

// encode writes m as: version, state, then ID, Zone, ClientAddr, PeerAddr and
// HTTPAddr, each a uvarint length and the bytes. Compact because memberlist
// sends it in every alive message and caps it at 512 bytes.
func (m Meta) encode() ([]byte, error) {
	b := make([]byte, 0, 2+5*binary.MaxVarintLen16+len(m.ID)+len(m.Zone)+len(m.ClientAddr)+len(m.PeerAddr)+len(m.HTTPAddr))
	b = append(b, metaVersion, byte(m.State))
	for _, s := range []string{m.ID, m.Zone, m.ClientAddr, m.PeerAddr, m.HTTPAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, ErrMetaTooLarge
	}
	return b, nil
}

func decodeMeta(b []byte) (Meta, error) {
	if len(b) < 2 || b[0] < metaVersion {
		return Meta{}, errBadMeta
	}
	m := Meta{State: State(b[1])}
	if m.State > Removed {
		return Meta{}, fmt.Errorf("%w: state %d", errBadMeta, b[1])
	}
	b = b[2:]
	for _, dst := range []*string{&m.ID, &m.Zone, &m.ClientAddr, &m.PeerAddr, &m.HTTPAddr} {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return Meta{}, errBadMeta
		}
		*dst = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return m, nil
}
