// Package scheme builds the runtime.Scheme every underlink component uses: Kubernetes' built-in types
// plus Spiderpool, Submariner and NetworkAttachmentDefinition types.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// New returns a scheme with every type underlink reads or writes.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(spiderv2beta1.AddToScheme(s))
	utilruntime.Must(submarinerv1.AddToScheme(s))
	utilruntime.Must(nadv1.AddToScheme(s))
	return s
}
