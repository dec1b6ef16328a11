package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// adminCommand talks to a running agent's admin API (serve --admin-listen).
func adminCommand() *cli.Command {
	common := []cli.Flag{
		&cli.StringFlag{Name: "admin-addr", Value: "127.0.0.1:9090", Usage: "the agent's --admin-listen address", EnvVars: []string{"STICKYSEAT_ADMIN_ADDR"}},
		&cli.StringFlag{Name: "admin-token", Usage: "the agent's --admin-token (prefer the env var or --admin-token-file: argv is readable by every local user)", EnvVars: []string{"STICKYSEAT_ADMIN_TOKEN"}},
		&cli.StringFlag{Name: "admin-token-file", Usage: "read --admin-token from this file (one line)", EnvVars: []string{"STICKYSEAT_ADMIN_TOKEN_FILE"}},
	}
	pool := &cli.StringFlag{Name: "pool", Value: "default", Usage: "pool name"}
	key := &cli.StringFlag{Name: "key", Required: true, Usage: "user key"}
	server := &cli.StringFlag{Name: "server", Required: true, Usage: "server name"}
	with := func(fs ...cli.Flag) []cli.Flag { return append(append([]cli.Flag{}, common...), fs...) }
	return &cli.Command{
		Name:  "admin",
		Usage: "look at and act on a running agent's seats (its --admin-listen API)",
		Subcommands: []*cli.Command{
			{Name: "pools", Usage: "pools, servers (state, used/quota) and live seats", Flags: with(&cli.IntFlag{Name: "seats", Value: 20, Usage: "seats to list per pool"}),
				Action: func(c *cli.Context) error {
					return adminCall(c, http.MethodGet, "/api/pools", url.Values{"seats": {fmt.Sprint(c.Int("seats"))}})
				}},
			{Name: "user", Usage: "one user's seat", Flags: with(pool, key), Action: func(c *cli.Context) error {
				return adminCall(c, http.MethodGet, "/api/user", url.Values{"pool": {c.String("pool")}, "key": {c.String("key")}})
			}},
			{Name: "queue", Usage: "a pool's waiting line (when-full: queue): its length and the places at its head", Flags: with(pool, &cli.IntFlag{Name: "places", Value: 20, Usage: "places to list from the head"}),
				Action: func(c *cli.Context) error {
					return adminCall(c, http.MethodGet, "/api/queue", url.Values{"pool": {c.String("pool")}, "places": {fmt.Sprint(c.Int("places"))}})
				}},
			{Name: "evict", Usage: "free a user's seat or place in line (their next request is a newcomer's)", Flags: with(pool, key), Action: func(c *cli.Context) error {
				return adminCall(c, http.MethodPost, "/api/evict", url.Values{"pool": {c.String("pool")}, "key": {c.String("key")}})
			}},
			{Name: "drain", Usage: "no new users on a server; seated users stay", Flags: with(pool, server), Action: func(c *cli.Context) error {
				return adminCall(c, http.MethodPost, "/api/state", url.Values{"pool": {c.String("pool")}, "server": {c.String("server")}, "state": {"drain"}})
			}},
			{Name: "undrain", Usage: "let a drained server take users again", Flags: with(pool, server), Action: func(c *cli.Context) error {
				return adminCall(c, http.MethodPost, "/api/state", url.Values{"pool": {c.String("pool")}, "server": {c.String("server")}, "state": {"up"}})
			}},
			{Name: "quota", Usage: "change a server's quota at run time (0: back to the configured one)", Flags: with(pool, server, &cli.IntFlag{Name: "quota", Required: true}),
				Action: func(c *cli.Context) error {
					return adminCall(c, http.MethodPost, "/api/quota", url.Values{"pool": {c.String("pool")}, "server": {c.String("server")}, "quota": {fmt.Sprint(c.Int("quota"))}})
				}},
		},
	}
}

// adminCall sends one API request and prints the answer; a non-2xx answer is an error.
func adminCall(c *cli.Context, method, path string, form url.Values) error {
	token, err := secret(c, "admin-token", "admin-token-file")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	u := "http://" + c.String("admin-addr") + path
	var body io.Reader
	if method == http.MethodGet {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("--admin-addr: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("--admin-addr: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	_, err = io.Copy(c.App.Writer, bytes.NewReader(out))
	return err
}
