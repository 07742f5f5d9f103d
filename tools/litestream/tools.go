//go:build tools

// Package tools pins litestream, which fanin's backup test runs as a separate process.
// It lives in its own module so litestream's dependencies stay out of fanin's go.mod.
package tools

import _ "github.com/benbjohnson/litestream/cmd/litestream"
