package main

import (
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"
)

// Names of the simulated broadcast. One exec to P PCs: every started event carries the same
// exec_id and request_id, and a random UUID result_id of its own.
const (
	benchExecID    = "3f2a9c1e-7b4d-4e21-9a55-0c6d8e1f2a3b"
	benchRequestID = "9d1c4b7a-2e3f-4a56-8b9c-1d2e3f4a5b6c"
	benchManifest  = "inventory-hw"
	benchVersion   = "1.0.0"
)

// genStart is when the simulated broadcast went out.
var genStart = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

// gen produces a broadcast's events one PC at a time, deterministically from its seed, so a
// mode can regenerate exactly the payloads that were preloaded into the stream without the
// harness holding them all in memory (they would count in the heap it measures).
type gen struct {
	rng *rand.Rand
	i   int
	id  [36]byte // the current PC's result_id
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// next advances to the next PC and draws its result_id.
func (g *gen) next() {
	var u [16]byte
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	hex.Encode(g.id[0:8], u[0:4])
	g.id[8] = '-'
	hex.Encode(g.id[9:13], u[4:6])
	g.id[13] = '-'
	hex.Encode(g.id[14:18], u[6:8])
	g.id[18] = '-'
	hex.Encode(g.id[19:23], u[8:10])
	g.id[23] = '-'
	hex.Encode(g.id[24:36], u[10:16])
	g.i++
}

// appendPC appends the current PC's id, zero-padded to seven digits: PC-0000042.
func (g *gen) appendPC(dst []byte) []byte {
	dst = append(dst, "PC-"...)
	if g.i >= 10_000_000 {
		return strconv.AppendInt(dst, int64(g.i), 10)
	}
	var d [7]byte
	for k, v := 6, g.i; k >= 0; k, v = k-1, v/10 {
		d[k] = '0' + byte(v%10)
	}
	return append(dst, d[:]...)
}

// startedAt is when the current PC started: spread over the first two seconds.
func (g *gen) startedAt() time.Time {
	return genStart.Add(time.Duration(g.i%200000) * 10 * time.Microsecond)
}

// appendStarted appends the current PC's EventStarted (~200 bytes of JSON) to dst.
func (g *gen) appendStarted(dst []byte) []byte {
	dst = append(dst, `{"result_id":"`...)
	dst = append(dst, g.id[:]...)
	dst = append(dst, `","request_id":"`+benchRequestID+`","exec_id":"`+benchExecID+`","pc_id":"`...)
	dst = g.appendPC(dst)
	dst = append(dst, `","started_at":"`...)
	dst = g.startedAt().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","manifest_id":"`+benchManifest+`","version":"`+benchVersion+`"}`...)
	return dst
}

// appendResult appends the current PC's ExecResult to dst.
func (g *gen) appendResult(dst []byte) []byte { return g.appendExecResult(dst, false) }

// appendLargeResult appends the current PC's ExecResult as an agent sends it when the output
// exceeded 256 KiB: a short inline stdout, and stdout_object naming the whole text.
func (g *gen) appendLargeResult(dst []byte) []byte { return g.appendExecResult(dst, true) }

func (g *gen) appendExecResult(dst []byte, large bool) []byte {
	dst = append(dst, `{"result_id":"`...)
	dst = append(dst, g.id[:]...)
	dst = append(dst, `","request_id":"`+benchRequestID+`","exec_id":"`+benchExecID+`","pc_id":"`...)
	dst = g.appendPC(dst)
	dst = append(dst, `","exit_code":0,"stdout":"hostname=`...)
	dst = g.appendPC(dst)
	if large {
		dst = append(dst, ` cpu=4 ram=16GiB [truncated]","stdout_object":"`...)
		dst = g.appendObjectKey(dst)
		dst = append(dst, `","stderr":"","started_at":"`...)
	} else {
		dst = append(dst, ` cpu=4 ram=16GiB","stderr":"","started_at":"`...)
	}
	at := g.startedAt()
	dst = at.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","finished_at":"`...)
	dst = at.Add(1500*time.Millisecond).AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","manifest_id":"`+benchManifest+`"}`...)
	return dst
}

// appendStartedSubject appends the current PC's started subject under prefix (events.started).
func (g *gen) appendStartedSubject(dst []byte, prefix string) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, "."+benchExecID+"."...)
	return g.appendPC(dst)
}

// resultSubject is the subject every result of the broadcast is published on.
const resultSubject = "results." + benchRequestID

// largeResultSubject is the subject of the large-output variant of the broadcast's results.
const largeResultSubject = "large.results." + benchRequestID

// hasLargeOutput reports whether PC i (1-based) of the broadcast has a large output when a
// fraction of the PCs have one: those where i·fraction crosses an integer, so they are evenly
// spread (every 20th for 0.05) and there are exactly largeCount of them.
func hasLargeOutput(i int, fraction float64) bool {
	return int(float64(i)*fraction) != int(float64(i-1)*fraction)
}

// largeCount is how many of p PCs have a large output.
func largeCount(p int, fraction float64) int { return int(float64(p) * fraction) }

// appendObjectKey appends the Object Store key of the current PC's stdout:
// <request_id>/<result_id>/stdout, as agents name it.
func (g *gen) appendObjectKey(dst []byte) []byte {
	dst = append(dst, benchRequestID+"/"...)
	dst = append(dst, g.id[:]...)
	return append(dst, "/stdout"...)
}

// outputLine returns one of the few lines a large output cycles through: what an inventory job
// prints per package.
func outputLine(k int) string {
	switch k % 4 {
	case 0:
		return "dpkg-query: package openssl 3.0.13-0ubuntu3.4 amd64 installed, files verified\n"
	case 1:
		return "dpkg-query: package libc6 2.39-0ubuntu8.3 amd64 installed, files verified\n"
	case 2:
		return "dpkg-query: package linux-image-6.8.0-49-generic amd64 installed, 1 config file changed\n"
	default:
		return "dpkg-query: package python3.12 3.12.3-1ubuntu0.2 amd64 installed, files verified\n"
	}
}

// appendOutput appends a large stdout of exactly size bytes for the PC named pc: numbered log
// lines naming the PC, ASCII only, so any cut is valid UTF-8 and SQLite's length() counts bytes.
func appendOutput(dst, pc []byte, size int) []byte {
	end := len(dst) + size
	for line := 1; len(dst) < end; line++ {
		dst = append(dst, pc...)
		dst = append(dst, " inventory-hw["...)
		dst = strconv.AppendInt(dst, int64(line), 10)
		dst = append(dst, "]: "...)
		dst = append(dst, outputLine(line)...)
	}
	dst = dst[:end]
	dst[end-1] = '\n'
	return dst
}
