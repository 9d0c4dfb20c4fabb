package apitypes

// ListenAddrs are the addresses a node listens on, as bound: with port 0 in a
// listen flag, the port the kernel picked. `ringkv server --addr-file` writes
// them, so that whoever started the node can learn its ports.
type ListenAddrs struct {
	Client string `json:"client"`
	HTTP   string `json:"http"`
	Peer   string `json:"peer"`
	Gossip string `json:"gossip"`
}
