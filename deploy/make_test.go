package deploy

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeHAProxyVariable checks, with make -n (nothing runs), that HAPROXY=path makes the
// demo, the fault suite and the HTTP benchmark use that binary, as an absolute path (the
// tests run in their package's directory), and that without it they read nothing extra.
func TestMakeHAProxyVariable(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	abs, err := filepath.Abs("../../shared/haproxy/haproxy-3.4.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"demo", "test-faults", "bench-http"} {
		t.Run(target, func(t *testing.T) {
			for _, tt := range []struct{ haproxy, want string }{
				{"../shared/haproxy/haproxy-3.4.0", `HAPROXY_BINS="` + abs + `"`},
				{"/opt/haproxy/sbin/haproxy", `HAPROXY_BINS="/opt/haproxy/sbin/haproxy"`},
				{"haproxy", `HAPROXY_BINS="haproxy"`},
			} {
				cmd := exec.Command("make", "-n", "-C", "..", target, "HAPROXY="+tt.haproxy)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("make -n %s HAPROXY=%s: %v\n%s", target, tt.haproxy, err, out)
				}
				if !strings.Contains(string(out), tt.want) {
					t.Errorf("make -n %s HAPROXY=%s lacks %s:\n%s", target, tt.haproxy, tt.want, out)
				}
			}
			out, err := exec.Command("make", "-n", "-C", "..", target).CombinedOutput()
			if err != nil {
				t.Fatalf("make -n %s: %v\n%s", target, err, out)
			}
			if strings.Contains(string(out), "HAPROXY_BINS=") {
				t.Errorf("make -n %s sets HAPROXY_BINS without HAPROXY=:\n%s", target, out)
			}
		})
	}
}
