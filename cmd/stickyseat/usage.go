package main

import (
	"fmt"
	"regexp"

	"github.com/urfave/cli/v2"
)

var (
	reBadValue  = regexp.MustCompile(`^invalid value "(.*)" for flag -([\w-]+): (.*)$`)
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -+([\w-]+)$`)
	reBadEnv    = regexp.MustCompile(`^could not parse "(.*)" as \w+ value from environment variable "(\w+)" for flag ([\w-]+): (.*)$`)
)

// usageError turns the flag package's errors into the one line, naming the flag, that every
// other bad value gets, instead of urfave/cli's usage dump.
func usageError(_ *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := reBadValue.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("--%s: invalid value %q (%s)", m[2], m[1], m[3])
	}
	if m := reUndefined.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("--%s: unknown flag (see --help)", m[1])
	}
	if m := reBadEnv.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("--%s: invalid value %q from %s (%s)", m[3], m[1], m[2], m[4])
	}
	return err
}

// noArgs refuses arguments after the flags: every setting is a flag.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (every setting is a flag; see --help)", c.Command.Name, c.Args().First())
	}
	return nil
}
