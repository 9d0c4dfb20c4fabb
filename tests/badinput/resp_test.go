package badinput

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// command encodes a RESP array of bulk strings.
func command(args ...string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

// respConn opens a TLS connection to n's client port, authenticated as who
// unless who is noCreds.
func (c *cluster) respConn(t *testing.T, n *node, who creds) net.Conn {
	t.Helper()
	conn := c.dialTLS(t, n.Client)
	if who.user != "" {
		conn.Write(command("AUTH", who.user, who.password))
		if a := readLine(conn); !bytes.HasPrefix(a.data, []byte("+OK")) {
			t.Fatalf("AUTH %s: %s", who.user, a)
		}
	}
	return conn
}

// readLine waits for one reply line (or the end of the connection).
func readLine(conn net.Conn) answer {
	return readAnswer(conn, 5*time.Second, func(b []byte) bool { return bytes.Contains(b, []byte("\r\n")) })
}

// errorOrClosed fails t unless the answer is a RESP error or a closed
// connection, and unless an error it names contains want (if given).
func errorOrClosed(t *testing.T, what string, a answer, want ...string) {
	t.Helper()
	switch {
	case len(a.data) == 0 && a.closed:
		return
	case len(a.data) == 0:
		t.Errorf("%s: no answer and the connection stays open", what)
	case a.data[0] != '-':
		t.Errorf("%s: %s, want an error or a closed connection", what, a)
	default:
		for _, w := range want {
			if !bytes.Contains(a.data, []byte(w)) {
				t.Errorf("%s: %s, want an error naming %q", what, a, w)
			}
		}
	}
}

// malformed sends data on a connection authenticated as admin; the node must
// answer with an error or close the connection.
func malformed(data string) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		conn := c.respConn(t, c.nodes[0], asAdmin)
		conn.Write([]byte(data))
		a := readLine(conn)
		errorOrClosed(t, fmt.Sprintf("%q", truncate([]byte(data), 40)), a)
		return a.String()
	}
}

// unauthenticated sends a command before AUTH: NOAUTH.
func unauthenticated(args ...string) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		conn := c.respConn(t, c.nodes[1], noCreds)
		conn.Write(command(args...))
		a := readLine(conn)
		errorOrClosed(t, strings.Join(args, " "), a, "NOAUTH")
		return a.String()
	}
}

// bulkFlood opens n connections that each declare a bulk of size bytes and
// send 2 bytes of it, checks the nodes' memory while they are open, and
// closes them.
func bulkFlood(n, size int, who creds) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		var conns []net.Conn
		for i := range n {
			conn := c.respConn(t, c.nodes[i%3], who)
			fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$6\r\nflood%d\r\n$%d\r\nab", i%10, size)
			conns = append(conns, conn)
		}
		time.Sleep(500 * time.Millisecond) // let the nodes read what they were sent
		c.checkMemory(t, fmt.Sprintf("with %d bulks of %d MiB declared", n, size>>20))
		answered := 0
		for _, conn := range conns {
			if a := readAnswer(conn, 50*time.Millisecond, nil); len(a.data) > 0 || a.closed {
				answered++
			}
		}
		closeAll(conns)
		return fmt.Sprintf("memory bounded; %d of %d refused or closed at once", answered, n)
	}
}

func respProbes() []probe {
	return []probe{
		{"resp", "plaintext-to-tls", "a plain RESP command to the TLS client port",
			func(t *testing.T, c *cluster) string {
				conn := dial(t, c.nodes[0].Client)
				conn.Write(command("GET", dataKey(5)))
				a := readAnswer(conn, 5*time.Second, nil)
				if !a.closed || bytes.Contains(a.data, []byte("badinput-value")) {
					t.Errorf("plain RESP to the TLS port: %s", a)
				}
				return a.String()
			}},
		{"resp", "no-auth-get", "GET a data key before AUTH", unauthenticated("GET", dataKey(5))},
		{"resp", "no-auth-set", "SET a data key before AUTH", unauthenticated("SET", dataKey(5), "owned")},
		{"resp", "no-auth-scan", "SCAN 0 before AUTH", unauthenticated("SCAN", "0")},
		{"resp", "no-auth-mget", "MGET of data keys before AUTH", unauthenticated("MGET", dataKey(5), dataKey(6))},
		{"resp", "auth-wrong-right", "AUTH user with a wrong password, then the right one",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[2], noCreds)
				conn.Write(command("AUTH", readerUser, "wrong"))
				wrong := readLine(conn)
				errorOrClosed(t, "AUTH with a wrong password", wrong, "WRONGPASS")
				conn.Write(command("AUTH", readerUser, readerPassword))
				right := readLine(conn)
				if !bytes.HasPrefix(right.data, []byte("+OK")) {
					t.Errorf("AUTH with the right password: %s", right)
				}
				conn.Write(command("GET", dataKey(6)))
				get := readAnswer(conn, 5*time.Second, func(b []byte) bool { return bytes.Count(b, []byte("\r\n")) >= 2 })
				if !bytes.Contains(get.data, []byte(fmt.Sprintf(dataSetValue, 6))) {
					t.Errorf("GET after AUTH: %s", get)
				}
				return fmt.Sprintf("wrong: %s; right: %s", wrong, right)
			}},
		{"resp", "reader-writes", "AUTH as a read-only user, then SET and DEL",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[0], asReader)
				conn.Write(command("SET", dataKey(7), "owned"))
				set := readLine(conn)
				errorOrClosed(t, "SET as reader", set, "NOPERM")
				conn.Write(command("DEL", dataKey(7)))
				del := readLine(conn)
				errorOrClosed(t, "DEL as reader", del, "NOPERM")
				return set.String()
			}},
		{"resp", "hello-auth-wrong", "HELLO 3 AUTH with a wrong password",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[1], noCreds)
				conn.Write(command("HELLO", "3", "AUTH", adminUser, "wrong"))
				a := readLine(conn)
				errorOrClosed(t, "HELLO 3 AUTH wrong", a, "WRONGPASS")
				return a.String()
			}},
		{"resp", "wrong-passwords-loop", "500 wrong AUTHs in a loop from one source address",
			func(t *testing.T, c *cluster) string {
				// From 127.0.0.2, so that the rate limit this earns does not
				// fall on the harness, which connects from 127.0.0.1.
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
				linesBefore := c.nodes[0].logLines()
				// dropped: connections the node closed, or refused, without an answer.
				wrongpass, other, dropped, held := 0, 0, 0, 0
				var firstOther string
				var conn net.Conn
				// Up to the first answer that is not WRONGPASS, or the first
				// one held back: either is the limit at work.
				for range 500 {
					if other+held+dropped > 0 {
						break
					}
					if conn == nil {
						var err error
						if conn, err = tls.DialWithDialer(d, "tcp", c.nodes[0].Client, c.sec.clientTLS()); err != nil {
							dropped++
							continue
						}
					}
					conn.Write(command("AUTH", adminUser, "guess"))
					a := readLine(conn)
					switch {
					case bytes.HasPrefix(a.data, []byte("-WRONGPASS")):
						wrongpass++
					case len(a.data) > 0:
						other++
						if firstOther == "" {
							firstOther = a.String()
						}
						if bytes.HasPrefix(a.data, []byte("+")) {
							t.Fatalf("a wrong password was accepted: %s", a)
						}
					}
					if len(a.data) == 0 && !a.closed {
						held++
						continue
					}
					if a.closed {
						if len(a.data) == 0 {
							dropped++
						}
						conn.Close()
						conn = nil
					}
				}
				if conn != nil {
					conn.Close()
				}
				if other+held+dropped == 0 {
					t.Errorf("%d wrong passwords all answered WRONGPASS: no rate limit", wrongpass)
				}
				logged := c.nodes[0].logLines() - linesBefore
				if !strings.Contains(c.nodes[0].Log(), "127.0.0.2") {
					t.Errorf("the failed logins from 127.0.0.2 were not logged")
				}
				if logged >= 250 {
					t.Errorf("500 failed logins wrote %d log lines: not sampled", logged)
				}
				return fmt.Sprintf("%d WRONGPASS, then limited (%s; %d held back, %d dropped); %d log lines", wrongpass, firstOther, held, dropped, logged)
			}},
		{"resp", "bulks-64MiB-unauthenticated", "200 connections before AUTH declare 64 MiB bulks, send 2 bytes", bulkFlood(200, 64<<20, noCreds)},
		{"resp", "bulks-64MiB-authenticated", "60 authenticated connections declare 64 MiB bulks, send 2 bytes", bulkFlood(60, 64<<20, asWriter)},
		// Under the largest argument a node takes (2 × --max-value-bytes):
		// the declaration is legal, so only growing as bytes arrive bounds it.
		{"resp", "bulks-30MiB-authenticated", "60 authenticated connections declare 30 MiB bulks (a legal size), send 2 bytes", bulkFlood(60, 30<<20, asWriter)},
		{"resp", "bad-type-byte", "a frame starting with '?'", malformed("?what\r\n")},
		{"resp", "negative-array", "*-5, then PING",
			func(t *testing.T, c *cluster) string {
				// Redis reads an array of length 0 or less as nothing at
				// all; what follows must then be read as the next command.
				conn := c.respConn(t, c.nodes[0], asAdmin)
				conn.Write(append([]byte("*-5\r\n"), command("PING")...))
				a := readLine(conn)
				if !bytes.HasPrefix(a.data, []byte("+PONG")) {
					errorOrClosed(t, "*-5", a)
				}
				return a.String()
			}},
		{"resp", "negative-bulk", "*1 then $-7", malformed("*1\r\n$-7\r\n")},
		{"resp", "huge-array", "*99999999999999", malformed("*99999999999999\r\n")},
		{"resp", "huge-bulk-length", "*1 then $99999999999999999999", malformed("*1\r\n$99999999999999999999\r\n")},
		{"resp", "non-numeric-length", "a bulk length that is no number ($y)", malformed("*1\r\n$y\r\n")},
		{"resp", "wrong-arity", "GET with no key", malformed(string(command("GET")))},
		{"resp", "unknown-command", "FLUSHEVERYTHING", malformed(string(command("FLUSHEVERYTHING", "now")))},
		{"resp", "bad-ttl", "SET with EX -1, EX abc, PX 0, a 20-digit EX",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[2], asAdmin)
				var got []string
				for _, opt := range [][]string{{"EX", "-1"}, {"EX", "abc"}, {"PX", "0"}, {"EX", "99999999999999999999"}} {
					conn.Write(command(append([]string{"SET", dataKey(8), "ttl-probe"}, opt...)...))
					a := readLine(conn)
					errorOrClosed(t, "SET "+strings.Join(opt, " "), a)
					if a.closed {
						return strings.Join(got, "; ") + "; closed"
					}
					got = append(got, strings.TrimSpace(string(truncate(a.data, 40))))
				}
				return strings.Join(got, "; ")
			}},
		{"resp", "oversized-key", "SET with a 16 KiB key (limit 8 KiB)",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[0], asAdmin)
				conn.Write(command("SET", strings.Repeat("k", 16<<10), "v"))
				a := readLine(conn)
				errorOrClosed(t, "a 16 KiB key", a)
				return a.String()
			}},
		{"resp", "oversized-value", "SET with a 17 MiB value (limit 16 MiB)",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[1], asAdmin)
				conn.Write(command("SET", "big", strings.Repeat("v", maxValueBytes+1<<20)))
				a := readLine(conn)
				errorOrClosed(t, "a 17 MiB value", a)
				return a.String()
			}},
		{"resp", "endless-inline", "1 MiB inline command without a line end",
			func(t *testing.T, c *cluster) string {
				conn := c.respConn(t, c.nodes[2], asAdmin)
				conn.Write([]byte("GET " + strings.Repeat("a", 1<<20)))
				a := readLine(conn)
				errorOrClosed(t, "1 MiB without a line end", a)
				return a.String()
			}},
		{"resp", "go-redis-no-auth", "a real Redis client without credentials: GET, SET",
			func(t *testing.T, c *cluster) string {
				r := c.redis(c.nodes[0], "", "", "")
				ctx := context.Background()
				getErr := r.Get(ctx, dataKey(9)).Err()
				setErr := r.Set(ctx, dataKey(9), "owned", 0).Err()
				for _, err := range []error{getErr, setErr} {
					if err == nil || errors.Is(err, redis.Nil) || !strings.Contains(err.Error(), "NOAUTH") {
						t.Errorf("without credentials: %v, want NOAUTH", err)
					}
				}
				return fmt.Sprintf("GET: %v; SET: %v", getErr, setErr)
			}},
	}
}
