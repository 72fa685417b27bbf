// Package relay holds the tests of the underlink-ipam relay, cmd/underlink-ipam/main.c: a C program,
// so its tests live in a Go package of their own (a directory with Go and C files is a cgo package).
// They build the relay and underlink-ipam-full as make build does, run them against an agent socket
// served by the test, and hold the relay to two rules: an ADD or a DEL it can hand over travels as
// protocol.CNI with every CNI_* variable; anything else gives exactly what underlink-ipam-full gives.
package relay
