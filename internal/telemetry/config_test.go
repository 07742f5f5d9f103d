package telemetry_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"fanin/internal/fault"
	"fanin/internal/telemetry"
)

// TestBadSettingsNameTheirField: a setting that cannot work is a *fault.FieldError naming its
// Go field (for NewServer, its addr as "Addr").
func TestBadSettingsNameTheirField(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name    string
		err     func() error
		field   string
		wantErr string
	}{
		{"no service name", func() error {
			cfg := telemetry.DefaultConfig()
			cfg.ServiceName = ""
			return cfg.Validate()
		}, "ServiceName", "ServiceName: must not be empty"},
		{"address not host:port", func() error {
			return telemetry.NewServer("9464", nil, telemetry.NewReadiness(0), quiet).Start()
		}, "Addr", "Addr: listen tcp: address 9464: missing port in address"},
		{"address taken", func() error {
			return telemetry.NewServer(taken.Addr().String(), nil, telemetry.NewReadiness(0), quiet).Start()
		}, "Addr", "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			var fe *fault.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v (%T), want a *fault.FieldError about %s", err, err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %q, want %q", err, tc.wantErr)
			}
		})
	}
}
