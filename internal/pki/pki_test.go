package pki

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// handshake runs one TLS handshake between srv and cli over a real loopback
// TCP connection and returns each side's error.
func handshake(t *testing.T, srv, cli *tls.Config) (srvErr, cliErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			_, err = io.ReadFull(tc, make([]byte, 1))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, cli)
	cliErr = tc.Handshake()
	if cliErr == nil {
		_, cliErr = tc.Write([]byte{1})
		if cliErr == nil {
			_, cliErr = io.ReadFull(tc, make([]byte, 1)) // EOF once the server closes
			if errors.Is(cliErr, io.EOF) {
				cliErr = nil
			}
		}
	}
	return <-done, cliErr
}

func TestPeerMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := loaded.IssueFiles(dir, "n1", []string{"127.0.0.1"}, Peer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := loaded.IssueFiles(dir, "n2", nil, Peer, time.Hour) // names no address
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := PeerConfigs(n1)
	if err != nil {
		t.Fatal(err)
	}
	_, cli, err := PeerConfigs(n2)
	if err != nil {
		t.Fatal(err)
	}
	if se, ce := handshake(t, srv, cli); se != nil || ce != nil {
		t.Fatalf("two nodes of one CA: server %v, client %v", se, ce)
	}

	// A dialler without a certificate is refused.
	noCert := cli.Clone()
	noCert.Certificates = nil
	if se, _ := handshake(t, srv, noCert); se == nil {
		t.Fatal("server accepted a peer without a certificate")
	}

	// A certificate from another CA is refused both ways.
	other, err := NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	odir := t.TempDir()
	if err := other.WriteCA(odir); err != nil {
		t.Fatal(err)
	}
	stranger, err := other.IssueFiles(odir, "x", []string{"127.0.0.1"}, Peer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ssrv, scli, err := PeerConfigs(stranger)
	if err != nil {
		t.Fatal(err)
	}
	if se, _ := handshake(t, srv, scli); se == nil {
		t.Fatal("server accepted a peer certified by another CA")
	}
	if _, ce := handshake(t, ssrv, cli); ce == nil {
		t.Fatal("node dialled a server certified by another CA")
	}
}

func TestServerOptionalClientCert(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	sf, err := ca.IssueFiles(dir, "server", []string{"127.0.0.1", "localhost"}, Server, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfig(sf, OptionalClientCert)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(Files{CA: sf.CA})
	if err != nil {
		t.Fatal(err)
	}
	cli.ServerName = "127.0.0.1"
	if se, ce := handshake(t, srv, cli); se != nil || ce != nil {
		t.Fatalf("client without a certificate, optional: server %v, client %v", se, ce)
	}
	cli.ServerName = "db.example.com" // not in the certificate
	if _, ce := handshake(t, srv, cli); ce == nil {
		t.Fatal("client accepted a server certificate for another name")
	}
	if _, err := ServerConfig(Files{Cert: sf.Cert, Key: sf.Key}, RequireClientCert); err == nil {
		t.Fatal("RequireClientCert without a CA file was accepted")
	}
}

// WriteBundle's server and client certificates complete a mutual TLS
// handshake with each other, through the loaders every port uses.
func TestWriteBundle(t *testing.T) {
	srvFiles, cliFiles, err := WriteBundle(t.TempDir(), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfig(srvFiles, RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(cliFiles)
	if err != nil {
		t.Fatal(err)
	}
	cli.ServerName = "127.0.0.1"
	if se, ce := handshake(t, srv, cli); se != nil || ce != nil {
		t.Fatalf("bundle's client to its server: server %v, client %v", se, ce)
	}
}
