package testbed

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Browser is headless Chromium driven through chromedriver's WebDriver HTTP API, to look at
// the status page the way a person does.
type Browser struct {
	driver  *Process
	base    string // http://127.0.0.1:port/session/<id>
	profile string
}

// BrowserBins returns chromium and chromedriver, or an error saying how to install them.
func BrowserBins() (chromium, driver string, err error) {
	for _, c := range []struct {
		name string
		dst  *string
	}{{"chromium", &chromium}, {"chromedriver", &driver}} {
		p, lerr := exec.LookPath(c.name)
		if lerr != nil {
			return "", "", fmt.Errorf("%s not found (install it: apt-get install chromium chromium-driver)", c.name)
		}
		*c.dst = p
	}
	return chromium, driver, nil
}

// StartBrowser starts chromedriver on a loopback port and opens a headless session whose
// profile lives in dir.
func StartBrowser(chromium, driver, dir string) (*Browser, error) {
	// chromedriver binds the port on IPv4 and IPv6; a port free on one may be taken on the
	// other, so a few ports are tried.
	var p *Process
	var addr string
	for try := 0; ; try++ {
		var err error
		if addr, err = FreePort(); err != nil {
			return nil, err
		}
		_, port, _ := strings.Cut(addr, ":")
		if p, err = Start("chromedriver", driver, "--port="+port, "--allowed-ips=127.0.0.1"); err != nil {
			return nil, err
		}
		err = WaitListening(p, addr, 15*time.Second)
		if err == nil {
			break
		}
		p.Stop()
		if try == 4 || !strings.Contains(p.Output(), "Address already in use") {
			return nil, err
		}
	}
	b := &Browser{driver: p, profile: filepath.Join(dir, "profile")}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--window-size=1200,900", "--user-data-dir=" + b.profile,
		}},
	}}}
	var created struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	if err := call(http.MethodPost, "http://"+addr+"/session", caps, &created); err != nil {
		p.Stop()
		return nil, fmt.Errorf("new session: %w\n%s", err, p.Output())
	}
	b.base = "http://" + addr + "/session/" + created.Value.SessionID
	return b, nil
}

// Close ends the session and chromedriver.
func (b *Browser) Close() {
	_ = call(http.MethodDelete, b.base, nil, nil) // chromedriver is stopped next anyway
	b.driver.Stop()
}

// Open loads url.
func (b *Browser) Open(url string) error {
	return call(http.MethodPost, b.base+"/url", map[string]string{"url": url}, nil)
}

// Source returns the page's current DOM as HTML.
func (b *Browser) Source() (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	err := call(http.MethodGet, b.base+"/source", nil, &v)
	return v.Value, err
}

// Click clicks the element the CSS selector finds.
func (b *Browser) Click(selector string) error {
	var found struct {
		Value map[string]string `json:"value"`
	}
	if err := call(http.MethodPost, b.base+"/element", map[string]string{"using": "css selector", "value": selector}, &found); err != nil {
		return fmt.Errorf("find %q: %w", selector, err)
	}
	var id string
	for _, v := range found.Value {
		id = v
	}
	return call(http.MethodPost, b.base+"/element/"+id+"/click", map[string]string{}, nil)
}

// Screenshot writes a PNG of the page to path.
func (b *Browser) Screenshot(path string) error {
	var v struct {
		Value string `json:"value"`
	}
	if err := call(http.MethodGet, b.base+"/screenshot", nil, &v); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(v.Value)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// call does one WebDriver request; a WebDriver error comes back as an error.
func call(method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdriver %s %s: HTTP %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
