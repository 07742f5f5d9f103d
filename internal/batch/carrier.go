package batch

import (
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts a NATS message header to a propagation.TextMapCarrier, matching keys
// case-insensitively.
//
// nats.Header is case-sensitive, and propagation.HeaderCarrier canonicalises keys
// ("Traceparent"), so the lowercase "traceparent" that producers in other languages send (as
// W3C Trace Context spells it) would not be found. Get tries the exact key first, then any
// spelling; Set writes the key as given.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key in any spelling, or "".
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set replaces the values of key, in any spelling, with value.
func (c HeaderCarrier) Set(key, value string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

// Keys lists the keys as they are spelled in the header.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
