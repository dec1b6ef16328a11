package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/metrics"
)

func TestMetricsMuxProfiles(t *testing.T) {
	m := metrics.New(metrics.Sources{Version: "test", Agent: func() agent.Stats { return agent.Stats{} }})
	for _, profiles := range []bool{false, true} {
		srv := httptest.NewServer(metricsMux(m, profiles))
		get := func(path string) (int, string) {
			t.Helper()
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, string(body)
		}
		if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "stickyseat_build_info") {
			t.Errorf("profiles=%v: GET /metrics = %d; want 200 with stickyseat_build_info", profiles, code)
		}
		code, body := get("/debug/pprof/goroutine?debug=1")
		switch {
		case profiles && (code != http.StatusOK || !strings.Contains(body, "goroutine profile")):
			t.Errorf("--pprof: GET /debug/pprof/goroutine = %d %.60q; want 200 and a goroutine profile", code, body)
		case !profiles && code != http.StatusNotFound:
			t.Errorf("without --pprof: GET /debug/pprof/goroutine = %d; want 404", code)
		}
		srv.Close()
	}
}
