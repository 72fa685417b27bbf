package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// CheckCoordinator checks a SpiderCoordinator: underlink merges the one named "default" into every
// SpiderMultusConfig's coordinator (spiderv2beta1.CoordinatorSpec.WithDefaults), so its fields get the
// checks a config's own coordinator fields get, at spec.*; a SpiderCoordinator of another name is named as
// having no effect, as in Spiderpool, which also reads only "default".
func CheckCoordinator(w *World, sc *spiderv2beta1.SpiderCoordinator) []Violation {
	if sc == nil {
		return nil
	}
	c := &collector{subject: ObjectRef("SpiderCoordinator", "", sc.Name)}
	if sc.Name != spiderv2beta1.CoordinatorDefaultName {
		c.warn(RuleCoordinatorSpecValid, field.NewPath("metadata", "name"), sc.Name,
			fmt.Sprintf("underlink reads only the SpiderCoordinator named %q: this one changes no network", spiderv2beta1.CoordinatorDefaultName),
			fmt.Sprintf("name it %s, or set these fields in each SpiderMultusConfig's spec.coordinator", spiderv2beta1.CoordinatorDefaultName))
	}
	// Every macvlan config that does not set a field takes it from here.
	coordinatorFields(c, RuleCoordinatorSpecValid, &sc.Spec, specPath, true)
	hijackEntries(c, w, &sc.Spec, specPath.Child("hijackCIDR"))
	return c.vs
}
