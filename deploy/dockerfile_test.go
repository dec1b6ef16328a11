package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd, Args string
}

// stage is one FROM ... of a multi-stage Dockerfile.
type stage struct {
	From, Name string
	Body       []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	var stages []stage
	var logical string
	for _, line := range strings.Split(readFile(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if logical == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			logical += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical += trimmed
		cmd, args, _ := strings.Cut(logical, " ")
		logical = ""
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			continue // ARG before FROM
		}
		stages[len(stages)-1].Body = append(stages[len(stages)-1].Body, in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build stage and a final stage", len(stages))
	}
	return stages
}

var (
	goLine    = regexp.MustCompile(`(?m)^go (\S+)\s*$`)
	golangTag = regexp.MustCompile(`^(?:docker\.io/)?(?:library/)?golang:(\d+\.\d+(?:\.\d+)?)(?:-\S+)?$`)
)

// TestDockerfileGoVersion compares the build stage's golang image with go.mod's go line. The
// image tag's version, without its variant suffix ("1.26.8" in golang:1.26.8-bookworm), must
// equal the go line exactly: major, minor and patch, so the image builds with the very Go
// release go.mod names. A floating tag (golang:1.26, golang:latest) fails: it would not say
// which release builds the image.
func TestDockerfileGoVersion(t *testing.T) {
	m := goLine.FindStringSubmatch(readFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	want := m[1]
	for _, s := range parseDockerfile(t) {
		if !strings.Contains(s.From, "golang:") {
			continue
		}
		tag := golangTag.FindStringSubmatch(s.From)
		if tag == nil {
			t.Errorf("FROM %s: want golang:<go.mod's version>[-variant]", s.From)
			continue
		}
		if tag[1] != want {
			t.Errorf("FROM %s: Go %s; want go.mod's go %s", s.From, tag[1], want)
		}
		return
	}
	t.Error("Dockerfile: no stage FROM golang:<version>")
}

// TestDockerfileImage checks how the image is built and run: a static binary without build
// paths, a final stage with nothing but it (distroless/static or scratch), a non-root user, and
// the agent listening on 0.0.0.0:12345 inside the container.
func TestDockerfileImage(t *testing.T) {
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]
	var run string
	for _, in := range build.Body {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			run = in.Args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/stickyseat"} {
		if !strings.Contains(run, want) {
			t.Errorf("build stage RUN go build %q: want %s", run, want)
		}
	}
	if !strings.HasPrefix(final.From, "gcr.io/distroless/static") && final.From != "scratch" {
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static… or scratch", final.From)
	}
	last := map[string]string{}
	var copies []string
	for _, in := range final.Body {
		last[in.Cmd] = in.Args
		if in.Cmd == "COPY" {
			copies = append(copies, in.Args)
		}
	}
	if final.From == "scratch" {
		// scratch has no user database and no CA certificates (rediss:// needs them).
		for _, want := range []string{"/etc/passwd", "ca-certificates"} {
			if !slices.ContainsFunc(copies, func(c string) bool { return strings.Contains(c, want) }) {
				t.Errorf("final stage FROM scratch copies no %s", want)
			}
		}
	}
	user := strings.Split(last["USER"], ":")[0]
	if user == "" || user == "root" || user == "0" {
		t.Errorf("final stage USER %q; want a non-root user", last["USER"])
	}
	if got := strings.Fields(last["EXPOSE"]); !slices.Contains(got, "12345") && !slices.Contains(got, "12345/tcp") {
		t.Errorf("EXPOSE %q; want 12345", last["EXPOSE"])
	}
	var entrypoint, cmd []string
	if err := json.Unmarshal([]byte(last["ENTRYPOINT"]), &entrypoint); err != nil || !slices.Equal(entrypoint, []string{"stickyseat"}) {
		t.Errorf(`ENTRYPOINT %s; want ["stickyseat"] (%v)`, last["ENTRYPOINT"], err)
	}
	if err := json.Unmarshal([]byte(last["CMD"]), &cmd); err != nil || len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf(`CMD %s; want ["serve", ...] (%v)`, last["CMD"], err)
	}
	if args := strings.Join(cmd, " "); !strings.Contains(args, "--listen 0.0.0.0:12345") && !strings.Contains(args, "--listen=0.0.0.0:12345") {
		t.Errorf("CMD %s; want --listen 0.0.0.0:12345 (HAProxy is in another container)", last["CMD"])
	}
}
