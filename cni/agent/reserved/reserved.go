// Package reserved gives the agent's pool writers the addresses SpiderReservedIPs reserve: parsed from
// the agent's cache whenever a SpiderReservedIP changes, so a pool write only reads the sets.
package reserved

import (
	"context"
	"sync"

	"github.com/go-logr/logr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/reservedip"
)

// Source holds the reserved sets, refreshed from Reader (the agent's cache) on every SpiderReservedIP
// event of the informer it watches.
type Source struct {
	Reader client.Reader
	Log    logr.Logger

	mu   sync.RWMutex
	sets map[int]iprange.Set
}

// Watch refreshes the sets on every add, update and delete the informer reports, the initial list
// included: the agent serves only once its caches are synced, so its first allocation sees them.
func (s *Source) Watch(inf cache.Informer) error {
	refresh := func(any) { s.refresh() }
	_, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: refresh, UpdateFunc: func(_, obj any) { refresh(obj) }, DeleteFunc: refresh,
	})
	return err
}

func (s *Source) refresh() {
	var list spv2.SpiderReservedIPList
	if err := s.Reader.List(context.Background(), &list); err != nil {
		s.Log.Info("listing SpiderReservedIPs failed; keeping the last sets read", "err", err.Error())
		return
	}
	sets, errs := reservedip.Sets(list.Items)
	for _, err := range errs {
		s.Log.Info("a SpiderReservedIP reserves nothing", "err", err.Error())
	}
	s.mu.Lock()
	s.sets = sets
	s.mu.Unlock()
}

// Set is the union of the addresses of family the SpiderReservedIPs reserve.
func (s *Source) Set(family int) iprange.Set {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sets[family]
}
