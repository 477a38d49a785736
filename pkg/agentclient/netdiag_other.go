//go:build !linux

package agentclient

import (
	"context"
	"net"
)

func pingStep(context.Context, net.IP) Step {
	return Step{Detail: "skipped: ICMP echo is implemented for Linux only"}
}

func pathStep(context.Context, net.IP) Step {
	return Step{Detail: "skipped: the path trace is implemented for Linux only"}
}
