package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"fanin/internal/fault"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pki writes a CA, a server certificate for 127.0.0.1 and a client certificate into dir.
func pki(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fanin test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

func TestConnectWithMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, cliCert, cliKey := pki(t, dir)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKey, CaFile: ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	url := "tls://" + s.Addr().String()
	ctx := context.Background()

	c, err := Connect(ctx, ConnConfig{URL: url, TLSCA: ca, TLSCert: cliCert, TLSKey: cliKey}, quiet)
	if err != nil {
		t.Fatalf("connect with the client certificate: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !c.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !c.IsConnected() {
		t.Fatal("not connected over mutual TLS")
	}
	if st, err := c.TLSConnectionState(); err != nil || len(st.PeerCertificates) == 0 {
		t.Fatal("connection is not TLS")
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	// Without the client certificate the server refuses: the client keeps retrying, never connected.
	c2, err := Connect(ctx, ConnConfig{URL: url, TLSCA: ca}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if c2.IsConnected() {
		t.Fatal("connected without a client certificate")
	}
	c2.Close()
}

func TestConnectRejectsHalfAKeyPair(t *testing.T) {
	_, err := Connect(context.Background(), ConnConfig{URL: "nats://127.0.0.1:1", TLSCert: "c.pem"}, quiet)
	if f, _ := fault.Field(err); f != "TLSKey" {
		t.Fatalf("got %v, want a *fault.FieldError about TLSKey", err)
	}
}

func TestDrainWaitsUntilClosed(t *testing.T) {
	e, err := StartEmbedded(context.Background(), "127.0.0.1:0", t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	c, err := Connect(context.Background(), ConnConfig{URL: e.URL()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.IsClosed() {
		t.Fatal("Drain returned before the connection was closed")
	}
}

func TestValidateRefusesURLsThatCanNeverBeDialed(t *testing.T) {
	for _, tc := range []struct {
		url     string
		wantErr string // "" for a valid one
	}{
		{url: "nats://127.0.0.1:4222"},
		{url: "tls://nats.example.com:4443"},
		{url: "ws://127.0.0.1:8080/ws"},
		{url: "wss://nats.example.com"},
		{url: "NATS://127.0.0.1:4222"},
		{url: "nats://nats"}, // a host on the default port
		{url: "127.0.0.1:4222"},
		{url: "[::1]:4222"},
		{url: " nats://a:4222 , nats://b:4222 "},
		{url: "nats://user:pass@a:4222,b:4222"},
		{url: "", wantErr: "URL: must not be empty"},
		{url: "  ", wantErr: "URL: must not be empty"},
		{url: ",,", wantErr: "URL: entry 1 of 3 is empty"},
		{url: "nats://a:4222,", wantErr: "URL: entry 2 of 2 is empty"},
		{url: "nats://127.0.0.1:99999", wantErr: `URL: "nats://127.0.0.1:99999": port 99999 is not between 1 and 65535`},
		{url: "nats://127.0.0.1:0", wantErr: "port 0 is not between 1 and 65535"},
		{url: "nats://127.0.0.1:x", wantErr: `invalid port ":x" after host`},
		{url: "http://127.0.0.1:4222", wantErr: `URL: "http://127.0.0.1:4222": scheme "http" is not nats, tls, ws or wss`},
		{url: "garbage", wantErr: `URL: "garbage": want host:port, or a URL`},
		{url: "::1", wantErr: "want host:port"},
		{url: "nats://:4222", wantErr: "no host"},
		{url: "nats://a:4222,ws://b:80", wantErr: `URL: "ws://b:80": ws:// cannot be mixed with nats://`},
		{url: "nats://user:secret@a:99999", wantErr: `URL: "nats://user:xxxxx@a:99999"`},
		{url: "nats://s3cr3t@a:99999", wantErr: `URL: "nats://xxxxx@a:99999"`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := ConnConfig{URL: tc.url}.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tc.url, err)
				}
				return
			}
			var fe *fault.FieldError
			if !errors.As(err, &fe) || fe.Field != "URL" {
				t.Fatalf("Validate(%q) = %v (%T), want a *fault.FieldError about the URL", tc.url, err, err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate(%q) = %q, want it to contain %q", tc.url, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("the error shows the password: %q", err)
			}
		})
	}
}

func TestConnectRefusesAnInvalidURLAtOnce(t *testing.T) {
	_, err := Connect(context.Background(), ConnConfig{URL: "http://127.0.0.1:4222"}, quiet)
	if f, _ := fault.Field(err); f != "URL" {
		t.Fatalf("got %v, want a *fault.FieldError about the URL", err)
	}
}

// TestValidateRefusesHalfAKeyPair names the half that is missing, mentioning the other.
func TestValidateRefusesHalfAKeyPair(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     ConnConfig
		field   string // "" for a valid one
		wantErr string
	}{
		{name: "neither", cfg: ConnConfig{URL: "tls://a:4443"}},
		{name: "both", cfg: ConnConfig{URL: "tls://a:4443", TLSCert: "c.pem", TLSKey: "k.pem"}},
		{name: "a CA alone", cfg: ConnConfig{URL: "tls://a:4443", TLSCA: "ca.pem"}},
		{name: "cert without key", cfg: ConnConfig{URL: "tls://a:4443", TLSCert: "c.pem"}, field: "TLSKey",
			wantErr: "TLSKey: must be set with TLSCert: they go together"},
		{name: "key without cert", cfg: ConnConfig{URL: "tls://a:4443", TLSKey: "k.pem"}, field: "TLSCert",
			wantErr: "TLSCert: must be set with TLSKey: they go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *fault.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.field == "":
			case !errors.As(err, &fe) || fe.Field != tc.field:
				t.Fatalf("Validate() = %v (%T), want a *fault.FieldError about %s", err, err, tc.field)
			case err.Error() != tc.wantErr:
				t.Fatalf("Validate() = %q, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestDrainOfAConnectionThatNeverConnectedIsNotAnError(t *testing.T) {
	c, err := Connect(context.Background(), ConnConfig{URL: "nats://127.0.0.1:1"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c.IsConnected() {
		t.Fatal("connected to port 1")
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if !c.IsClosed() {
		t.Fatal("Drain left the connection open")
	}
}
