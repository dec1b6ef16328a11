package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestStatusPageInChromium loads the status page of an agent holding seats in headless
// Chromium: the seat bars and users show, and clicking "drain" drains the server (the agent
// then seats newcomers elsewhere). A screenshot is saved as a test artifact under
// testdata/artifacts. Evicting from the page works too, and a form posted to the admin API
// by a page of another origin is refused without changing anything.
func TestStatusPageInChromium(t *testing.T) {
	chromium, driver, err := testbed.BrowserBins()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	_, addr, _, adminAddr := startAgentWith(t, "--servers", "s1=2,s2=4", "--admin-listen", "127.0.0.1:0")
	c := spopClient(t, addr)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if st, _ := ask(t, c, u); st != "new" {
			t.Fatalf("%s: %s; want new", u, st)
		}
	}
	b, err := testbed.StartBrowser(chromium, driver, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Open("http://" + adminAddr + "/"); err != nil {
		t.Fatal(err)
	}
	src, err := b.Source()
	if err != nil {
		t.Fatal(err)
	}
	// By used/quota: alice s1, bob s2, carol s2, dave s1 (a tie, configured order): s1 is
	// full (2/2, a full red bar), s2 half (2/4), and every user is listed.
	for _, want := range []string{`id="server-default-s1"`, `<div class="bar full"><div class="fill" style="width: 100%">`,
		`<div class="bar"><div class="fill" style="width: 50%">`, "2 / 2", "2 / 4",
		"<td>alice</td>", "<td>bob</td>", "<td>carol</td>", "<td>dave</td>", "4 / 6 seats"} {
		if !strings.Contains(src, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	artifact := filepath.Join("..", "testdata", "artifacts", "status-page.png")
	if err := b.Screenshot(artifact); err != nil {
		t.Errorf("screenshot: %v", err)
	} else {
		t.Logf("screenshot: %s", artifact)
	}

	if err := b.Click("#server-default-s2 button"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		src, err = b.Source()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(src, `<tr class="drain" id="server-default-s2">`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s2 not shown draining 10s after the click:\n%s", src)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The drain took effect in the agent: s1 is full and s2 drains, so a newcomer is full.
	if st, srv := ask(t, c, "erin"); st != "full" {
		t.Errorf("newcomer after draining s2 in the page: %s %s; want full", st, srv)
	}
	if st, srv := ask(t, c, "carol"); st != "hit" || srv != "s2" {
		t.Errorf("carol on the drained s2: %s %s; want hit s2", st, srv)
	}
	if err := b.Screenshot(filepath.Join("..", "testdata", "artifacts", "status-page-drained.png")); err != nil {
		t.Errorf("screenshot: %v", err)
	}

	// The evict button frees a seat: bob's row goes and bob gets a new decision.
	if err := b.Click(`form[action="/api/evict"] input[value="bob"] ~ button`); err != nil {
		t.Fatal(err)
	}
	waitSource(t, b, "bob's row gone after the evict click", func(src string) bool {
		return strings.Contains(src, "<td>alice</td>") && !strings.Contains(src, "<td>bob</td>")
	})
	if st, _ := ask(t, c, "bob"); st == "hit" {
		t.Errorf("bob after the evict click: hit; want a new decision")
	}

	// A page from another origin that posts a form to the admin API is refused (403) and
	// changes nothing: from another port of 127.0.0.1 (same site, other origin) and from
	// localhost (another site). The browser sends Origin and Sec-Fetch-Site as it would for
	// any web page open on this host.
	for _, host := range []string{"127.0.0.1", "localhost"} {
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><form method="post" action="http://%s/api/state"><input type="hidden" name="pool" value="default">`+
				`<input type="hidden" name="server" value="s1"><input type="hidden" name="state" value="drain"><button id="go" type="submit">win a prize</button></form>`, adminAddr)
		}))
		_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())
		if err := b.Open("http://" + host + ":" + port + "/"); err != nil {
			t.Fatal(err)
		}
		if err := b.Click("#go"); err != nil {
			t.Fatal(err)
		}
		waitSource(t, b, "the cross-site form's answer from "+host, func(src string) bool {
			return strings.Contains(src, "cross-site request refused")
		})
		evil.Close()
		if st := serverState(t, adminAddr, "", "s1"); st != "up" {
			t.Errorf("after a cross-site form from %s: s1 is %q; want up", host, st)
		}
	}
	if st, srv := ask(t, c, "frank"); st != "full" {
		t.Errorf("newcomer after the refused cross-site drains: %s %s; want full (s1 full, s2 drained, nothing else changed)", st, srv)
	}
}

// waitSource polls the browser's page until cond holds, for up to 10 seconds.
func waitSource(t *testing.T, b *testbed.Browser, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		src, err := b.Source()
		if err != nil {
			t.Fatal(err)
		}
		if cond(src) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 10s:\n%s", what, src)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
