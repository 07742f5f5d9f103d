package codec

import "crypto/sha1"

// oidNamespace is the RFC 9562 OID namespace, 6ba7b812-9dad-11d1-80b4-00c04fd430c8.
var oidNamespace = [16]byte{
	0x6b, 0xa7, 0xb8, 0x12, 0x9d, 0xad, 0x11, 0xd1,
	0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
}

// legacyPrefix starts the UUID name a legacy result id is derived from.
const legacyPrefix = "kanade-issue-19/legacy-result-id:"

// LegacyResultID is the result id of a legacy ExecResult that carries none:
// the UUID version 5 (SHA-1) in the OID namespace of the name
// "kanade-issue-19/legacy-result-id:<request_id>:<pc_id>", as lowercase hex
// with hyphens (36 characters). It is deterministic, so redeliveries of one
// legacy result land on one row. The strings are hashed byte for byte; note
// the name is ambiguous when request_id contains ':'.
func LegacyResultID(requestID, pcID string) string {
	return string(appendLegacyResultID(make([]byte, 0, 36), []byte(requestID), []byte(pcID)))
}

// appendLegacyResultID appends LegacyResultID(requestID, pcID) to dst.
// requestID and pcID may alias dst.
func appendLegacyResultID(dst, requestID, pcID []byte) []byte {
	var buf [128]byte
	name := append(buf[:0], oidNamespace[:]...)
	name = append(name, legacyPrefix...)
	name = append(name, requestID...)
	name = append(name, ':')
	name = append(name, pcID...)
	sum := sha1.Sum(name)
	sum[6] = sum[6]&0x0f | 0x50 // version 5
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789abcdef"
	for i, c := range sum[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return dst
}
