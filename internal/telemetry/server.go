package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fanin/internal/fault"
)

// Server is the operator's HTTP listener:
//
//	/metrics        the Prometheus text format (404 when there is no gatherer)
//	/healthz        200 "ok" while the process serves at all (liveness)
//	/readyz         200 "ready", or 503 with the reasons (readiness)
//	/debug/pprof/   the Go profiler (net/http/pprof), with WithProfiling only; 404 otherwise
type Server struct {
	addr  string
	srv   *http.Server
	ln    net.Listener
	done  chan struct{}
	log   *slog.Logger
	ready *Readiness
}

// ServerOption adds to what a Server serves.
type ServerOption func(*http.ServeMux)

// WithProfiling serves the Go profiler (net/http/pprof) under /debug/pprof/: heap, goroutine,
// allocs, block, mutex and threadcreate profiles, a CPU profile (/debug/pprof/profile?seconds=N)
// and an execution trace. Off unless asked for: whoever reaches the listener can read stack
// traces and the command line, and a CPU profile or trace costs CPU while it runs.
func WithProfiling() ServerOption {
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // also serves each named profile
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

// NewServer returns a server for addr ("host:port"; port 0 picks one) serving g and ready, and
// what opts add. It does no I/O: call Start.
func NewServer(addr string, g prometheus.Gatherer, ready *Readiness, log *slog.Logger, opts ...ServerOption) *Server {
	s := &Server{addr: addr, log: log, ready: ready, done: make(chan struct{})}
	mux := http.NewServeMux()
	for _, o := range opts {
		o(mux)
	}
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.ready.Ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Start listens and serves in the background. An address it cannot listen on is a
// *fault.FieldError about NewServer's addr, field "Addr".
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fault.Fieldf("Addr", "%w", err)
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the address listened on, once started ("" before).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops listening and waits for the requests in flight, within ctx. It is a no-op
// when the server was never started, and idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("stop the metrics listener: %w", err)
	}
	return nil
}
