package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestQueuePageInChromium opens the page HAProxy answers a waiting user with in headless
// Chromium (key: the user URL parameter, as a browser sends no custom header): it shows the
// place, and as seats free the page, refreshing itself, shows the place moving up and then
// the server's own answer once the user is seated. A screenshot is saved under
// testdata/artifacts.
func TestQueuePageInChromium(t *testing.T) {
	chromium, driver, err := testbed.BrowserBins()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	b, err := testbed.StartBrowser(chromium, driver, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "http", Servers: []string{"s1"}, MaxUsers: 1,
			Idle: time.Minute, Key: "param:user", Queue: true, Admin: true, QueueRetryAfter: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		get := func(user string) testbed.Reply {
			t.Helper()
			r, err := testbed.NewClient(user, "127.0.0.11", "").Do(ctx, s.Frontend, testbed.Request{Path: "/?user=" + user})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := get("alice"); r.Server != "s1" {
			t.Fatalf("alice: %s; want s1", r)
		}
		if r := get("bob"); r.Place != 1 {
			t.Fatalf("bob: %s; want place 1", r)
		}
		if err := b.Open("http://" + s.Frontend + "/?user=carol"); err != nil {
			t.Fatal(err)
		}
		src := waitPage(t, b, "place 2", func(src string) bool { return pagePlace(src) == 2 })
		for _, want := range []string{"Every seat is taken", "Your place in line"} {
			if !strings.Contains(src, want) {
				t.Errorf("waiting page lacks %q:\n%s", want, src)
			}
		}
		if err := b.Screenshot(filepath.Join("..", "testdata", "artifacts", "queue-page.png")); err != nil {
			t.Errorf("screenshot: %v", err)
		}

		// alice leaves and bob, at the head, takes her seat: the open page moves up to 1 by
		// itself.
		if err := s.Evict(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if r := get("bob"); r.Server != "s1" {
			t.Fatalf("bob after alice left: %s; want s1", r)
		}
		waitPage(t, b, "place 1 after a seat freed", func(src string) bool { return pagePlace(src) == 1 })

		// bob leaves: the page's next refresh seats carol and shows the server's answer.
		if err := s.Evict(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		waitPage(t, b, "the server's answer once seated", func(src string) bool { return strings.Contains(src, ">s1</pre>") })
		if r := get("bob"); r.Place != 1 {
			t.Errorf("bob coming back: %s; want place 1 (carol holds the seat)", r)
		}
	})
}

// browserPlaceRE finds the place on the waiting page as the browser's DOM serializes it.
var browserPlaceRE = regexp.MustCompile(`id=["']place["']>([0-9]+)<`)

// pagePlace returns the place a waiting page shows, 0 when src is no such page.
func pagePlace(src string) int {
	m := browserPlaceRE.FindStringSubmatch(src)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1]) // digits only; too many of them is no place
	return n
}

// waitPage polls the browser's page until cond holds, for up to 15 seconds (the page
// refreshes itself every second).
func waitPage(t *testing.T, b *testbed.Browser, what string, cond func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		src, err := b.Source()
		if err != nil {
			t.Fatal(err)
		}
		if cond(src) {
			return src
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 15s:\n%s", what, src)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
