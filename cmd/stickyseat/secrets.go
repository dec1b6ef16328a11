package main

import (
	"fmt"
	"io"
	"os"
	"strings"

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
		return "", fmt.Errorf("--%s and --%s: give the secret once", valueFlag, fileFlag)
	}
	return readSecretFile(fileFlag, path)
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
