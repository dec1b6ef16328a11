package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
)

func TestIsRejection(t *testing.T) {
	closed := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{closed, true},
		{fmt.Errorf("read: %w", errors.New("connection reset by peer")), true},
		{&url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: errors.New("dial tcp: connection refused")}, false},
	} {
		if got := isRejection(tt.err); got != tt.want {
			t.Errorf("isRejection(%v) = %t; want %t", tt.err, got, tt.want)
		}
	}
}
