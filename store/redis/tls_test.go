package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// writeCert makes a CA and a server certificate for 127.0.0.1 in dir and returns the CA pool.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stickyseat test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// TestTLSAndAuth runs the store against a real redis-server that only speaks TLS and only
// lets an ACL user in: the rediss:// URL with user and password works (given the CA), a
// wrong password or an untrusted certificate fails with an error, never a seat.
func TestTLSAndAuth(t *testing.T) {
	bin := redisBinary(t)
	dir := t.TempDir()
	roots := writeCert(t, dir)
	port := freePort(t)
	acl := filepath.Join(dir, "users.acl")
	if err := os.WriteFile(acl, []byte("user default off\nuser seats on >s3cret ~stickyseat:* +@all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--aclfile", acl)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("redis-server %q:\n%s (state %v)", cmd.Args, out.String(), cmd.ProcessState)
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	exited := make(chan struct{})
	go func() { cmd.Process.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("TLS redis-server exited:\n%s", out.String())
		default:
		}
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS redis-server not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	newStore := func(url string, trust bool) *Store {
		opts, err := ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		if opts.TLSConfig == nil {
			t.Fatalf("ParseURL(%q) has no TLS config", url)
		}
		if trust {
			opts.TLSConfig.RootCAs = roots
		}
		client := goredis.NewUniversalClient(opts)
		t.Cleanup(func() { client.Close() })
		return New(client, Options{Timeout: 5 * time.Second, RefreshInterval: -1})
	}
	req := store.Request{Pool: "tls", Key: "u1", Idle: time.Hour, Servers: []store.Server{{Name: "s1", Quota: 1, Accepting: true}}}
	ctx := context.Background()

	good := newStore("rediss://seats:s3cret@"+addr, true)
	res, err := good.Assign(ctx, req)
	if err != nil || res.Outcome != store.OutcomeNew || res.Server != "s1" {
		t.Fatalf("Assign over TLS with the right user = %+v, %v; want new s1", res, err)
	}
	if res, err := good.Assign(ctx, req); err != nil || res.Outcome != store.OutcomeHit {
		t.Errorf("second Assign over TLS = %+v, %v; want hit", res, err)
	}

	for _, tt := range []struct {
		name, url string
		trust     bool
		want      string
	}{
		{"wrong password", "rediss://seats:wrong@" + addr, true, "WRONGPASS"},
		{"no user", "rediss://" + addr, true, "NOAUTH"},
		{"untrusted certificate", "rediss://seats:s3cret@" + addr, false, "certificate"},
	} {
		res, err := newStore(tt.url, tt.trust).Assign(ctx, req)
		if err == nil {
			t.Errorf("%s: Assign = %+v, nil error; want an error", tt.name, res)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error %q; want it to mention %s", tt.name, err, tt.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %q leaks the password", tt.name, err)
		}
	}
}
