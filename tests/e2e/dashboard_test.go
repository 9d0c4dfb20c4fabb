package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ringkv/ringkv/internal/testutil"
)

// artefactDir is where tests leave files for a person to look at (the
// dashboard's screenshots): $RINGKV_ARTEFACT_DIR, else tests/e2e/artefacts.
func artefactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RINGKV_ARTEFACT_DIR")
	if dir == "" {
		dir = "artefacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds the browser: Debian's chromium package (.ci/run installs
// it), or $RINGKV_CHROMIUM. A missing browser fails the test: it is the
// dashboard's only check.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RINGKV_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: install Debian's chromium package (apt-get install chromium) or set RINGKV_CHROMIUM")
	return ""
}

// rowStatus is what the page's nodes table shows for each node.
const rowStatus = `Object.fromEntries([...document.querySelectorAll("#nodes tbody tr")].map(r => [r.dataset.node, r.dataset.status]))`

// TestDashboard loads /ui in headless Chromium against a real three-node
// cluster under traffic, its nodes protected as every node of these tests is
// (password, peer mutual TLS, gossip key): /ui asks for credentials; with
// them the page loads with no console error and shows three nodes up; a
// node killed with SIGKILL shows as down within 5 s.
func TestDashboard(t *testing.T) {
	exe := chromium(t)
	nodes := startCluster(t, 3)

	// Traffic through two nodes, so the charts and hot keys have data.
	ctx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopTraffic(); wg.Wait() }()
	for _, nd := range nodes[:2] {
		c := nd.redis()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("user:%d", i%500)
				if i%4 == 0 {
					key = "session:hot"
				}
				c.Set(ctx, key, i, 0)
				c.Get(ctx, key)
			}
		}()
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.WindowSize(1400, 980),
		// CI runs as root, where Chromium refuses its sandbox.
		chromedp.NoSandbox,
	)
	// A bound on the whole browser session: a hung Chromium fails the test
	// instead of holding the suite until go test's own timeout.
	limit, cancelLimit := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelLimit()
	actx, cancelAlloc := chromedp.NewExecAllocator(limit, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	var mu sync.Mutex
	var problems []string
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				problems = append(problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	noProblems := func(when string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			problems = problems[:min(len(problems), 10)]
			t.Fatalf("%s: the page logged errors:\n%s", when, strings.Join(problems, "\n"))
		}
	}

	// The nodes have a password (securityArgs): the page asks for it, as
	// the rest of the HTTP port does, and the browser then sends it with
	// the page's every request.
	url := "http://" + nodes[0].HTTP + "/ui/"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("/ui without credentials: %s %q, want 401 with a Basic challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("default:"+e2ePassword))
	if err := chromedp.Do(bctx,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Authorization": basic},
			})
			return err
		}),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`#nodes tbody tr`)),
	); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}

	waitRows := func(limit time.Duration, want map[string]string) (map[string]string, error) {
		deadline := time.Now().Add(limit)
		var got map[string]string
		for {
			var err error
			if got, err = chromedp.Run(bctx, chromedp.Evaluate[map[string]string](rowStatus)); err != nil {
				return got, err
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return got, nil
			}
			if time.Now().After(deadline) {
				return got, errors.New("not shown in time")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	allUp := map[string]string{"n1": "up", "n2": "up", "n3": "up"}
	if got, err := waitRows(30*time.Second, allUp); err != nil {
		t.Fatalf("the page shows %v, want %v: %v", got, allUp, err)
	}
	// Let the charts collect a few samples before the screenshot.
	testutil.Eventually(t, 30*time.Second, func() error {
		samples, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#hotkeys tbody tr").length`))
		if err != nil {
			return err
		}
		if samples == 0 {
			return errors.New("no hot keys shown yet")
		}
		return nil
	})
	time.Sleep(6 * time.Second)
	noProblems("after loading")
	dir := artefactDir(t)
	screenshot(bctx, t, filepath.Join(dir, "dashboard.png"))

	nodes[2].Kill()
	killed := time.Now()
	oneDown := map[string]string{"n1": "up", "n2": "up", "n3": "down"}
	got, err := waitRows(5*time.Second, oneDown)
	if err != nil {
		t.Fatalf("5 s after killing n3 the page shows %v, want %v: %v", got, oneDown, err)
	}
	t.Logf("n3 shown down %s after the kill", time.Since(killed).Round(10*time.Millisecond))
	// A moment for the ring and charts to redraw around the dead node.
	time.Sleep(2 * time.Second)
	screenshot(bctx, t, filepath.Join(dir, "dashboard-node-down.png"))
	noProblems("after the kill")
}

func screenshot(ctx context.Context, t *testing.T, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	t.Logf("screenshot: %s", abs)
}
