package e2e

import (
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
// testdata/artifacts.
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
}
