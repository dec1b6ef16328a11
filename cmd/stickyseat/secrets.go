package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// maxSecretFile bounds what a secret file may hold: a token or password, not a log.
const maxSecretFile = 64 << 10

// secret returns a secret given directly (flag or env var) under valueFlag, or read from the
// file named by fileFlag, so that it need not appear in the process's argv, which every
// local user can read in /proc. Giving both is an error; giving neither returns "".
func secret(c *cli.Context, valueFlag, fileFlag string) (string, error) {
	value, path := c.String(valueFlag), c.String(fileFlag)
	if path == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("%s and %s: give the secret once", givenAs(c, valueFlag), givenAs(c, fileFlag))
	}
	return readSecretFile(fileFlag, path)
}

// minAdminToken is the shortest admin token serve takes: the login form and the API can
// be tried by anything that reaches the listener.
const minAdminToken = 16

// adminToken returns serve's admin token (see secret); one shorter than minAdminToken
// characters is refused.
func adminToken(c *cli.Context) (string, error) {
	token, err := secret(c, "admin-token", "admin-token-file")
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(token); token != "" && n < minAdminToken {
		from := givenAs(c, "admin-token")
		if c.String("admin-token-file") != "" {
			from = givenAs(c, "admin-token-file")
		}
		return "", fmt.Errorf("%s: the admin token has %d characters; use at least %d (for example: openssl rand -hex 16)", from, n, minAdminToken)
	}
	return token, nil
}

// givenAs names where the operator gave the flag name: its environment variable when the
// value is the one that variable holds, the flag otherwise, so an error never names a flag
// the operator did not pass.
func givenAs(c *cli.Context, name string) string {
	value := c.String(name)
	for _, cc := range c.Lineage() {
		if cc.Command == nil {
			continue
		}
		for _, f := range cc.Command.Flags {
			sf, ok := f.(*cli.StringFlag)
			if !ok || sf.Name != name {
				continue
			}
			for _, env := range sf.EnvVars {
				if v, ok := os.LookupEnv(env); ok && v != "" && v == value {
					return env
				}
			}
		}
	}
	return "--" + name
}

// warnSecretFileModes logs a warning for each secret file that users other than its owner
// can read (group or others permission bits): the secret is then no secret on this host.
func warnSecretFileModes(c *cli.Context, log zerolog.Logger) {
	for _, flag := range []string{"admin-token-file", "redis-password-file"} {
		path := c.String(flag)
		if path == "" {
			continue
		}
		info, err := os.Stat(path)
		if err != nil {
			continue // reading it reports the error
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			log.Warn().Str("flag", givenAs(c, flag)).Str("file", path).Str("mode", fmt.Sprintf("%04o", perm)).
				Msg("secret file readable by other users of this host: chmod 600 it")
		}
	}
}

// readSecretFile reads a secret file; trailing line breaks and spaces are not part of it.
func readSecretFile(flag, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("--%s: %s is larger than %d bytes", flag, path, maxSecretFile)
	}
	s := strings.TrimRight(string(data), "\r\n\t ")
	if s == "" {
		return "", fmt.Errorf("--%s: %s is empty", flag, path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("--%s: %s holds more than one line", flag, path)
	}
	return s, nil
}
