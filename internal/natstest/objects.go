package natstest

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// GateObjectGets returns js with one change: the object stores it hands out call gate before
// each Get, which fails with gate's error when it returns one. Tests use it to hold a read at a
// chosen moment, count reads in flight, or answer as a failing or lagging server would.
func GateObjectGets(js jetstream.JetStream, gate func(ctx context.Context, name string) error) jetstream.JetStream {
	return gatedJS{js, gate}
}

type gatedJS struct {
	jetstream.JetStream
	gate func(ctx context.Context, name string) error
}

func (g gatedJS) ObjectStore(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	s, err := g.JetStream.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return gatedStore{s, g.gate}, nil
}

type gatedStore struct {
	jetstream.ObjectStore
	gate func(ctx context.Context, name string) error
}

func (g gatedStore) Get(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) (jetstream.ObjectResult, error) {
	if err := g.gate(ctx, name); err != nil {
		return nil, err
	}
	return g.ObjectStore.Get(ctx, name, opts...)
}
