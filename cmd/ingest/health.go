package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"fanin/internal/batch"
	"fanin/internal/broker"
	"fanin/internal/output"
	"fanin/internal/telemetry"
)

// health is what /readyz checks, filled in as the app comes up; the listener starts before
// NATS is reached, so every field is read atomically.
type health struct {
	nc       atomic.Pointer[broker.Conn]
	loops    atomic.Pointer[[]*batch.Loop]
	stopping atomic.Bool
	db       atomic.Pointer[readyChecker]
	output   atomic.Pointer[output.Resolver]
}

// checks are the readiness conditions: not shutting down, connected to NATS, both durables
// bound, each projection's last write to the database (if any) successful, and the last read of a large
// output (if any) answered by the object store. No probe borrows a writer's connection: SQLite's
// is a stat of the file, PostgreSQL's a query on a connection of its own.
func (h *health) checks() []telemetry.Check {
	return []telemetry.Check{
		{Name: "ingest", Func: func(context.Context) error {
			if h.stopping.Load() {
				return errors.New("shutting down")
			}
			return nil
		}},
		{Name: "nats", Func: func(context.Context) error {
			nc := h.nc.Load()
			switch {
			case nc == nil:
				return errors.New("not connected yet")
			case !nc.IsConnected():
				return fmt.Errorf("not connected (%s)", strings.ToLower(nc.Status().String()))
			}
			return nil
		}},
		{Name: "consumers", Func: func(context.Context) error {
			loops := h.loops.Load()
			if loops == nil {
				return errors.New("not started")
			}
			var errs []error
			for _, l := range *loops {
				if err := l.Ready(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", l.Config().Kind, err))
				}
			}
			return errors.Join(errs...)
		}},
		{Name: "database", Func: func(ctx context.Context) error {
			if db := h.db.Load(); db != nil {
				if err := (*db).Ready(ctx); err != nil {
					return err
				}
			}
			if loops := h.loops.Load(); loops != nil {
				for _, l := range *loops {
					if err := l.WriteError(); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{Name: "output", Func: func(context.Context) error {
			if r := h.output.Load(); r != nil {
				return r.Healthy()
			}
			return nil
		}},
	}
}
