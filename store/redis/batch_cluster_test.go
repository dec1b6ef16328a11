package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// clusterPools starts a Cluster and returns a store on it, with admin clients of every
// master, and two pools whose keys live on different masters: the second one's master
// client first.
func clusterPools(t *testing.T) (s *Store, admins []*goredis.Client, pools [2]string, second *goredis.Client) {
	t.Helper()
	addrs := startCluster(t)
	client := newClient(t, "redis-cluster://"+strings.Join(addrs, ","))
	cc, ok := client.(*goredis.ClusterClient)
	if !ok {
		t.Fatalf("client is a %T; want *redis.ClusterClient", client)
	}
	s = New(client, Options{RefreshInterval: -1, Timeout: 20 * time.Second})
	master := func(pool string) string {
		node, err := cc.MasterForKey(context.Background(), s.userKey(pool, "x"))
		if err != nil {
			t.Fatalf("master of pool %q: %v", pool, err)
		}
		return node.Options().Addr
	}
	pools[0] = "p0"
	for i := 1; pools[1] == ""; i++ {
		if p := "p" + strconv.Itoa(i); master(p) != master(pools[0]) {
			pools[1] = p
		}
	}
	for _, addr := range addrs {
		a := goredis.NewClient(&goredis.Options{Addr: addr})
		t.Cleanup(func() { a.Close() })
		admins = append(admins, a)
		if addr == master(pools[1]) {
			second = a
		}
	}
	for _, pool := range pools {
		mustAssign(t, s, wideRequest(pool, "warm-up")) // the script is on both masters
	}
	return s, admins, pools, second
}

// TestBatchNoScriptCluster has one of two Cluster masters lose the script while both pools'
// pipelines wait: only that master's calls go again as EVAL.
func TestBatchNoScriptCluster(t *testing.T) {
	s, admins, pools, lostNode := clusterPools(t)
	resume := pauseScripts(t, admins...)
	var slots, pending []<-chan answer
	const perPool = 10
	for _, pool := range pools {
		for i := range maxInFlight {
			slots = append(slots, assignAsync(s, time.Second, wideRequest(pool, "slot-"+strconv.Itoa(i))))
		}
		waitBatcher(t, s, pool, maxInFlight, 0)
		for i := range perPool {
			pending = append(pending, assignAsync(s, 0, wideRequest(pool, "queued-"+strconv.Itoa(i))))
		}
		waitBatcher(t, s, pool, maxInFlight, perPool)
	}
	rt0 := s.RoundTrips()
	for _, ch := range slots {
		<-ch
	}
	if err := lostNode.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH on the master of %q: %v", pools[1], err)
	}
	for _, pool := range pools {
		waitBatcher(t, s, pool, 1, 0) // the queue went out as one pipeline
	}
	resume()

	var answers []answer
	for _, ch := range pending {
		answers = append(answers, <-ch)
	}
	checkSeated(t, s, answers)
	if rt := s.RoundTrips() - rt0; rt != 3*perPool {
		t.Errorf("%d queued calls, half on the master that lost the script: %d commands; want %d", 2*perPool, rt, 3*perPool)
	}
}

// TestBatchPoolsIsolated stalls one Cluster master: calls in a pool on another master still
// get their answers at once, while those of the stalled pool wait.
func TestBatchPoolsIsolated(t *testing.T) {
	s, _, pools, stalledNode := clusterPools(t)
	stalled, healthy := pools[1], pools[0]
	resume := pauseScripts(t, stalledNode)
	var pending []<-chan answer
	for i := range maxInFlight + 5 {
		pending = append(pending, assignAsync(s, 0, wideRequest(stalled, "u"+strconv.Itoa(i))))
	}
	waitBatcher(t, s, stalled, maxInFlight, 5)
	for i := range 20 {
		a := <-assignAsync(s, time.Second, wideRequest(healthy, "u"+strconv.Itoa(i)))
		if a.err != nil || a.res.Outcome != store.OutcomeNew {
			t.Fatalf("Assign(%q, %q) with the master of %q paused = %+v, %v after %v; want a new seat", healthy, a.req.Key, stalled, a.res, a.err, a.elapsed)
		}
	}
	resume()
	var answers []answer
	for _, ch := range pending {
		answers = append(answers, <-ch)
	}
	checkSeated(t, s, answers)
}
