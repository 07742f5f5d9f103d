package batch

import "testing"

func TestAutomaticGroupKeepsMemoryBoundedWhateverN(t *testing.T) {
	for _, tc := range []struct {
		n, group, writers     int
		wantGroup, wantMaxAck int
	}{
		{n: 1000, group: 0, wantGroup: 8, wantMaxAck: 14000},
		{n: 100, group: 0, wantGroup: 64, wantMaxAck: 9800},
		{n: 5000, group: 0, wantGroup: 1, wantMaxAck: 20000},
		{n: 10000, group: 0, wantGroup: 1, wantMaxAck: 40000},
		{n: 1000, group: 1, wantGroup: 1, wantMaxAck: 4000},
		{n: 10, group: 1, wantGroup: 1, wantMaxAck: 1000},
		{n: 1000, group: 20, wantGroup: 20, wantMaxAck: 32000},
		// A second writer commits a group of its own meanwhile.
		{n: 1000, group: 0, writers: 2, wantGroup: 8, wantMaxAck: 22000},
		{n: 1000, group: 1, writers: 2, wantGroup: 1, wantMaxAck: 5000},
		{n: 10000, group: 0, writers: 2, wantGroup: 1, wantMaxAck: 50000},
	} {
		c := Started()
		c.BatchSize, c.GroupBatches, c.Writers = tc.n, tc.group, tc.writers
		if err := c.Validate(); err != nil {
			t.Fatalf("N=%d group=%d: %v", tc.n, tc.group, err)
		}
		if got := c.groupBatches(); got != tc.wantGroup {
			t.Errorf("N=%d group=%d: effective group %d, want %d", tc.n, tc.group, got, tc.wantGroup)
		}
		if got := c.maxAckPending(); got != tc.wantMaxAck {
			t.Errorf("N=%d group=%d writers=%d: max ack pending %d, want %d", tc.n, tc.group, tc.writers, got, tc.wantMaxAck)
		}
	}
}
