package loadgen

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of two, so a recorded
// latency is off by at most 1/64 (1.6%) of itself.
const subBits = 6

// maxExp bounds the recorded range: larger values land in the last bucket (about 18 min).
const maxExp = 34

// Histogram counts latencies in log-linear buckets, like HdrHistogram: constant relative
// precision from nanoseconds to minutes in a fixed 18 KiB. It is not safe for concurrent
// use; each connection keeps its own and Run merges them.
type Histogram struct {
	counts [(maxExp + 2) << subBits]uint64
	n      uint64
	max    int64
}

// bucket maps a value to its bucket: values below 2^(subBits+1) have one bucket each; above,
// the top subBits+1 significant bits pick the bucket within the value's power of two.
func bucket(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	e := bits.Len64(u) - subBits - 1
	if e <= 0 {
		return int(u)
	}
	if e > maxExp {
		return len(Histogram{}.counts) - 1
	}
	return e<<subBits + int(u>>uint(e))
}

// bucketMid is the middle of a bucket's range, the value a quantile reports.
func bucketMid(i int) int64 {
	if i < 2<<subBits {
		return int64(i)
	}
	e := i>>subBits - 1
	low := int64(i-e<<subBits) << uint(e)
	return low + int64(1)<<uint(e)/2
}

// Record counts one latency.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucket(int64(d))]++
	h.n++
	if int64(d) > h.max {
		h.max = int64(d)
	}
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of recorded latencies.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded latency, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the latency below which a fraction q (0..1) of the recorded ones fall,
// within the histogram's precision; 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketMid(i), h.max))
		}
	}
	return time.Duration(h.max)
}
