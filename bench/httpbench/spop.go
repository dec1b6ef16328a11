package main

import (
	"context"
	"io"
)

func runSPOP(ctx context.Context, cfg config, dir string, out io.Writer) error {
	return nil
}
