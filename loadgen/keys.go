package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
)

// Dist is how the load picks which of Users user keys a request carries.
type Dist string

// Key distributions.
const (
	// Uniform picks every user with the same probability.
	Uniform Dist = "uniform"
	// Zipf picks user i with probability proportional to 1/(i+1)^ZipfS: a few users make
	// most requests, as on real sites.
	Zipf Dist = "zipf"
	// Sequential sends user 0, 1, ... Users-1 and wraps, across all connections: a run of
	// Users requests touches every user exactly once (the prefill of a growth test).
	Sequential Dist = "seq"
)

// ParseDist reads a distribution name.
func ParseDist(s string) (Dist, error) {
	switch d := Dist(s); d {
	case Uniform, Zipf, Sequential:
		return d, nil
	}
	return "", fmt.Errorf("unknown key distribution %q (want uniform, zipf or seq)", s)
}

// keySource generates one connection's user keys without allocating.
type keySource struct {
	prefix   string
	users    uint64
	dist     Dist
	newRatio float64
	rng      *rand.Rand
	zipf     *rand.Zipf
	seq      *atomic.Uint64 // shared by every connection of a run
	newTag   string         // unique per run and connection: new users never repeat
	newCount uint64
}

func newKeySource(o *Options, run uint64, conn int, seq *atomic.Uint64) *keySource {
	rng := rand.New(rand.NewPCG(run, uint64(conn)))
	k := &keySource{
		prefix: o.KeyPrefix, users: uint64(o.Users), dist: o.Dist, newRatio: o.NewRatio, rng: rng, seq: seq,
		newTag: fmt.Sprintf("new-%x-%d-", uint32(run), conn),
	}
	if o.Dist == Zipf {
		k.zipf = rand.NewZipf(rng, o.ZipfS, 1, k.users-1)
	}
	return k
}

// appendKey appends the next key to b and reports whether it is a user never sent before.
func (k *keySource) appendKey(b []byte) ([]byte, bool) {
	b = append(b, k.prefix...)
	if k.newRatio > 0 && k.rng.Float64() < k.newRatio {
		k.newCount++
		return strconv.AppendUint(append(b, k.newTag...), k.newCount, 10), true
	}
	var i uint64
	switch k.dist {
	case Zipf:
		i = k.zipf.Uint64()
	case Sequential:
		i = (k.seq.Add(1) - 1) % k.users
	default:
		i = k.rng.Uint64N(k.users)
	}
	return strconv.AppendUint(b, i, 10), false
}
