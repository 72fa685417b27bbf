package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

// ErrRunPlugin says a call needs the plugin process itself: an ADD that probes the segment from the
// pod's namespace (ipam.detectIPConflict, ipam.detectGateway), or a command other than ADD and DEL.
// The relay then execs underlink-ipam-full with the same call.
var ErrRunPlugin = errors.New("this call runs in the plugin process (underlink-ipam-full)")

// Serve runs an ADD or a DEL that the relay (cmd/underlink-ipam) handed to the agent, with a, the
// agent's own service. It checks what the plugin process checks, in the same order and with the same
// errors (the cni library's skel: the environment, the network name, the config's cniVersion; then
// LoadConf), and returns what that process would print on stdout: the result of an ADD, nothing for a
// DEL. A failed call returns a *types.Error, printed by the relay as the plugin would print it.
func Serve(ctx context.Context, command string, args *skel.CmdArgs, a Agent) ([]byte, error) {
	if command != "ADD" && command != "DEL" {
		return nil, ErrRunPlugin
	}
	if err := checkEnv(command, args); err != nil {
		return nil, err
	}
	if err := checkName(args.StdinData); err != nil {
		return nil, err
	}
	configVersion, err := (&version.ConfigDecoder{}).Decode(args.StdinData)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	if verr := (&version.Reconciler{}).Check(configVersion, version.All); verr != nil {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, "incompatible CNI versions", verr.Details())
	}
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	if command == "ADD" && needsProbe(conf) {
		return nil, ErrRunPlugin
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(conf.IPAM.TimeoutSeconds)*time.Second)
	defer cancel()
	var out bytes.Buffer
	if command == "ADD" {
		err = add(ctx, args, conf, a, &out)
	} else {
		err = release(ctx, args, conf, a)
	}
	if err != nil {
		var te *types.Error
		if !errors.As(err, &te) {
			te = types.NewError(types.ErrInternal, err.Error(), "")
		}
		return nil, te
	}
	return out.Bytes(), nil
}

// release frees what the pod interface holds (DEL) through a.
func release(ctx context.Context, args *skel.CmdArgs, conf *Conf, a Agent) error {
	req, err := request(args, conf)
	if err != nil {
		return err
	}
	if _, err := a.Release(ctx, req); err != nil {
		return cniError(err)
	}
	return nil
}

// checkEnv is skel's check of the CNI_* variables an ADD and a DEL need.
func checkEnv(command string, args *skel.CmdArgs) error {
	var missing []string
	for _, v := range []struct {
		name, val string
		need      bool
		check     func(string) *types.Error
	}{
		{"CNI_CONTAINERID", args.ContainerID, true, utils.ValidateContainerID},
		{"CNI_NETNS", args.Netns, command == "ADD", nil},
		{"CNI_IFNAME", args.IfName, true, utils.ValidateInterfaceName},
		{"CNI_PATH", args.Path, true, nil},
	} {
		switch {
		case v.val == "" && v.need:
			missing = append(missing, v.name)
		case v.val != "" && v.check != nil:
			if err := v.check(v.val); err != nil {
				return err
			}
		}
	}
	if len(missing) > 0 {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("required env variables [%s] missing", strings.Join(missing, ",")), "")
	}
	return nil
}

// checkName is skel's check of the network config's name.
func checkName(stdin []byte) error {
	var conf struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("error unmarshall network config: %v", err), "")
	}
	if conf.Name == "" {
		return types.NewError(types.ErrInvalidNetworkConfig, "missing network name", "")
	}
	if err := utils.ValidateNetworkName(conf.Name); err != nil {
		return err
	}
	return nil
}
