package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// HostVethPrefix starts the name of every host-side veth the coordinator creates.
const HostVethPrefix = "ul"

// aliasPrefix starts the IFLA_IFALIAS of every host veth the coordinator creates; GC finds its own links
// by it, never by name alone.
const aliasPrefix = "underlink/"

// HostVethName is the host side of an attachment's veth pair: "ul" and 11 hex digits of
// sha256(containerID/ifName), 13 characters (the kernel allows 15). It depends only on what every CNI
// command receives, so DEL finds the link without a cached result; ifName is part of it because a pod
// may have several attachments.
func HostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return HostVethPrefix + hex.EncodeToString(sum[:])[:11]
}

// networkTag is a short fixed-length tag of the network name, so an alias stays well under the
// kernel's 255 bytes whatever the name's length.
func networkTag(network string) string {
	sum := sha256.Sum256([]byte(network))
	return hex.EncodeToString(sum[:])[:8]
}

// hostVethAlias records on the host veth which network, container and interface it belongs to:
// "underlink/<network tag>/<container ID>/<ifName>". GC of one network must not remove the veths of
// another network's attachments, which are absent from its valid-attachments list.
func hostVethAlias(network, containerID, ifName string) string {
	return aliasPrefix + networkTag(network) + "/" + containerID + "/" + ifName
}

// parseAlias reverses hostVethAlias.
func parseAlias(alias string) (tag, containerID, ifName string, ok bool) {
	rest, ok := strings.CutPrefix(alias, aliasPrefix)
	if !ok {
		return "", "", "", false
	}
	tag, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", "", false
	}
	return tag, rest[:i], rest[i+1:], true
}
