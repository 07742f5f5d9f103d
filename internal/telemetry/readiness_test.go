package telemetry_test

import (
	"context"
	"sync/atomic"
	"testing"

	"fanin/internal/telemetry"
)

// TestReadyGaugeSaysWhatReadyzSays: fanin_ready is one series without labels, 1 while every
// check passes and 0 while one fails, so "not ready" can be alerted on from /metrics alone.
func TestReadyGaugeSaysWhatReadyzSays(t *testing.T) {
	cfg := telemetry.DefaultConfig()
	cfg.Getenv = env(nil)
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	var connected atomic.Bool
	// A TTL of 1ns: every collection runs the checks again.
	ready := telemetry.NewReadiness(1, telemetry.Check{Name: "nats", Func: func(context.Context) error {
		if !connected.Load() {
			return errNotConnected
		}
		return nil
	}})
	if err := ready.Observe(tel.MeterProvider); err != nil {
		t.Fatal(err)
	}

	readyValue := func() float64 {
		t.Helper()
		mfs, err := tel.Gatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "fanin_ready" {
				continue
			}
			if n := len(mf.GetMetric()); n != 1 {
				t.Fatalf("fanin_ready has %d series, want 1", n)
			}
			m := mf.GetMetric()[0]
			for _, l := range m.GetLabel() {
				if l.GetName() == "projection" {
					t.Errorf("fanin_ready is labelled %v: want one series for the process", m.GetLabel())
				}
			}
			return m.GetGauge().GetValue()
		}
		t.Fatal("no fanin_ready")
		return 0
	}
	if v := readyValue(); v != 0 {
		t.Errorf("fanin_ready = %v while a check fails, want 0", v)
	}
	connected.Store(true)
	if v := readyValue(); v != 1 {
		t.Errorf("fanin_ready = %v while every check passes, want 1", v)
	}
}
