package cache

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// Links remembers, per set of NICs, which nodes of the last scan had all of them up, so that the next
// scan re-reads the labels only of nodes whose object changed. Node objects from informers are never
// modified in place (a label change is a new object), so an unchanged pointer is an unchanged node.
// With 1000 nodes this turns PreFilter's per-node label lookups into pointer comparisons.
type Links struct {
	mu    sync.Mutex
	scans map[string]*linkScan
}

type linkScan struct {
	nodes []*v1.Node
	up    []bool
	down  int // entries with up false
}

// NewLinks returns an empty Links.
func NewLinks() *Links { return &Links{scans: map[string]*linkScan{}} }

// AllUp reports whether up holds for the node of every one of nodes (a NodeInfo without its Node is
// skipped). key names the NIC set up checks. Results for nodes whose object is the one seen at the same
// index last time are reused.
func (l *Links) AllUp(key string, nodes []fwk.NodeInfo, up func(*v1.Node) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(nodes)
	s := l.scans[key]
	if s == nil || len(s.nodes) != n {
		s = &linkScan{nodes: make([]*v1.Node, n), up: make([]bool, n), down: n}
		l.scans[key] = s
	}
	for i, ni := range nodes {
		nd := ni.Node()
		if nd != nil && nd == s.nodes[i] {
			continue
		}
		isUp := nd == nil || up(nd)
		if isUp != s.up[i] {
			if isUp {
				s.down--
			} else {
				s.down++
			}
		}
		s.nodes[i], s.up[i] = nd, isUp
	}
	return s.down == 0
}
