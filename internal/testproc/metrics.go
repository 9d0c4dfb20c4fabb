package testproc

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metric reads one series from the Prometheus text at url (a node's
// /metrics) with c: a name alone, or a name with its labels as the text
// writes them (ringkv_resp_commands_total{command="get"}). found is false
// when the text holds no such series, as for a counter not yet counted.
func Metric(c *http.Client, url, series string) (v float64, found bool, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil, err
		}
	}
	return 0, false, sc.Err()
}

// RESPCommands is how many RESP commands named cmd (lower case) the node
// whose /metrics is at url has served (ringkv_resp_commands_total): which
// node a client sent a command to.
func RESPCommands(tb testing.TB, c *http.Client, url, cmd string) int {
	tb.Helper()
	v, _, err := Metric(c, url, `ringkv_resp_commands_total{command="`+cmd+`"}`)
	if err != nil {
		tb.Fatal(err)
	}
	return int(v)
}
