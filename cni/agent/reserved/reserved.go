// Package reserved gives the agent's pool writers the addresses SpiderReservedIPs reserve, from the
// agent's informer, parsed once per set of object versions.
package reserved

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/reservedip"
)

// Source reads SpiderReservedIPs from Reader (the agent's cache).
type Source struct {
	Reader client.Reader
	Log    logr.Logger

	mu   sync.Mutex
	key  string
	sets map[int]iprange.Set
}

// Set is the union of the addresses of family the SpiderReservedIPs reserve now. A list that fails
// (the cache not synced yet) returns the last set read: the agent serves only once its caches are
// synced, so that is at worst the set of a moment ago.
func (s *Source) Set(family int) iprange.Set {
	var list spv2.SpiderReservedIPList
	if err := s.Reader.List(context.Background(), &list); err != nil {
		s.Log.Info("listing SpiderReservedIPs failed; using the last set read", "err", err.Error())
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sets[family]
	}
	parts := make([]string, 0, len(list.Items))
	for _, r := range list.Items {
		parts = append(parts, r.Name+"@"+r.ResourceVersion)
	}
	slices.Sort(parts)
	key := strings.Join(parts, ",")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets != nil && key == s.key {
		return s.sets[family]
	}
	sets, errs := reservedip.Sets(list.Items)
	for _, err := range errs {
		s.Log.Info("a SpiderReservedIP reserves nothing", "err", err.Error())
	}
	s.sets, s.key = sets, key
	return s.sets[family]
}
