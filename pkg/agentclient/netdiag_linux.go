package agentclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of the path trace and the echo: a diagnosis must end within the
// caller's deadline whatever the network does.
const (
	traceMaxHops   = 16
	traceHopWait   = 400 * time.Millisecond
	traceMaxSilent = 3 // hops in a row without an answer end the trace
	traceProbes    = 2 // probes a hop, the second only when the first had no answer
	traceBasePort  = 33434
	echoCount      = 3
	echoWait       = 500 * time.Millisecond
)

// pingStep sends ICMP echo requests from an unprivileged ICMP socket (as
// ping does without privileges). Where the system does not allow such
// sockets (net.ipv4.ping_group_range), the step is skipped with the reason.
func pingStep(ctx context.Context, ip net.IP) Step {
	ip4 := ip.To4()
	if ip4 == nil {
		return Step{Detail: "skipped: IPv6 is not probed yet"}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return Step{Detail: "skipped: this system does not allow unprivileged ICMP sockets to this process's group (sysctl net.ipv4.ping_group_range)"}
		}
		return Step{Detail: "skipped: " + err.Error()}
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
	to := &unix.SockaddrInet4{Addr: [4]byte(ip4)}
	var rtts []time.Duration
	var lastErr string
	for seq := 1; seq <= echoCount && ctx.Err() == nil; seq++ {
		// Type 8 (echo request), code 0; the kernel sets the identifier
		// and the checksum of an ICMP datagram socket.
		msg := []byte{8, 0, 0, 0, 0, 0, byte(seq >> 8), byte(seq), 'v', 'i', 'g', 'i', 'l'}
		start := time.Now()
		if err := unix.Sendto(fd, msg, 0, to); err != nil {
			lastErr = err.Error()
			continue
		}
		deadline := start.Add(echoWait)
		for {
			ready, ok := waitReady(ctx, fd, deadline)
			if !ok {
				break
			}
			if ready&unix.POLLERR != 0 {
				if off, what, ok := readErrQueue(fd); ok {
					// A router says there is no way: asking again
					// would only spend its ICMP rate limit.
					return Step{Done: true, Detail: fmt.Sprintf("no reply (%s from %s)", what, off)}
				}
				break
			}
			buf := make([]byte, 512)
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break
			}
			if n >= 8 && buf[0] == 0 && int(binary.BigEndian.Uint16(buf[6:8])) == seq {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	if len(rtts) == 0 {
		detail := fmt.Sprintf("no reply to %d echo requests", echoCount)
		if lastErr != "" {
			detail += " (" + lastErr + ")"
		}
		return Step{Done: true, Detail: detail}
	}
	return Step{Done: true, OK: true, Detail: fmt.Sprintf("%d of %d replies, best %s", len(rtts), echoCount, roundRTT(slices.Min(rtts)))}
}

// pathStep traces the path to ip as tracepath does, without privileges: UDP
// datagrams with a growing TTL, the ICMP errors they cause read from the
// socket's error queue (IP_RECVERR). It says how far the path goes: each
// hop's address and round trip, up to the agent's host, or where it ends.
func pathStep(ctx context.Context, ip net.IP) Step {
	ip4 := ip.To4()
	if ip4 == nil {
		return Step{Detail: "skipped: IPv6 is not traced yet"}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Step{Detail: "skipped: " + err.Error()}
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1); err != nil {
		return Step{Detail: "skipped: IP_RECVERR: " + err.Error()}
	}
	var hops []string
	silent := 0
	for ttl := 1; ttl <= traceMaxHops; ttl++ {
		if ctx.Err() != nil {
			hops = append(hops, "(out of time)")
			return Step{Done: true, Detail: "not reached: " + strings.Join(hops, ", ")}
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl); err != nil {
			return Step{Detail: "skipped: IP_TTL: " + err.Error()}
		}
		answered := false
		// Two probes a hop: routers limit the ICMP errors they send.
		for probe := 0; probe < traceProbes && !answered; probe++ {
			start := time.Now()
			to := &unix.SockaddrInet4{Addr: [4]byte(ip4), Port: traceBasePort + ttl}
			if err := unix.Sendto(fd, []byte{'v', 'i', 'g', 'i', 'l', byte(ttl)}, 0, to); err != nil {
				// The local routing table has no way there.
				hops = append(hops, fmt.Sprintf("%d: %s", ttl, strings.TrimPrefix(err.Error(), "sendto: ")))
				return Step{Done: true, Detail: "no route from here: " + strings.Join(hops, ", ")}
			}
			deadline := start.Add(traceHopWait)
			for !answered {
				ready, ok := waitReady(ctx, fd, deadline)
				if !ok {
					break
				}
				if ready&unix.POLLERR == 0 {
					// A UDP answer from the far end (something listens there):
					// the host is reached.
					buf := make([]byte, 64)
					_, _, _ = unix.Recvfrom(fd, buf, 0)
					hops = append(hops, fmt.Sprintf("%d: %s %s", ttl, ip4, roundRTT(time.Since(start))))
					return Step{Done: true, OK: true, Detail: reached(ttl, hops)}
				}
				ee, ok := readErr(fd)
				if !ok {
					break
				}
				if ee.probeTTL != 0 && ee.probeTTL != ttl {
					continue // a late answer to an earlier probe
				}
				answered = true
				rtt := roundRTT(time.Since(start))
				switch {
				case ee.origin == unix.SO_EE_ORIGIN_ICMP && ee.icmpType == 11:
					hops = append(hops, fmt.Sprintf("%d: %s %s", ttl, ee.offender, rtt))
				case ee.origin == unix.SO_EE_ORIGIN_ICMP && ee.icmpType == 3 && ee.icmpCode == 3:
					hops = append(hops, fmt.Sprintf("%d: %s %s", ttl, ee.offender, rtt))
					return Step{Done: true, OK: true, Detail: reached(ttl, hops)}
				case ee.origin == unix.SO_EE_ORIGIN_ICMP && ee.icmpType == 3:
					hops = append(hops, fmt.Sprintf("%d: %s %s (%s)", ttl, ee.offender, rtt, unreachableText(ee.icmpCode)))
					return Step{Done: true, Detail: fmt.Sprintf("ends at hop %d: %s", ttl, strings.Join(hops, ", "))}
				default:
					hops = append(hops, fmt.Sprintf("%d: %s", ttl, ee.what()))
					return Step{Done: true, Detail: fmt.Sprintf("ends at hop %d: %s", ttl, strings.Join(hops, ", "))}
				}
			}
		}
		if !answered {
			hops = append(hops, fmt.Sprintf("%d: *", ttl))
			if silent++; silent >= traceMaxSilent {
				if ttl == silent {
					return Step{Done: true, Detail: "no answer from any hop: " + strings.Join(hops, ", ")}
				}
				return Step{Done: true, Detail: fmt.Sprintf("no answer beyond hop %d: %s", ttl-silent, strings.Join(hops, ", "))}
			}
		} else {
			silent = 0
		}
	}
	return Step{Done: true, Detail: fmt.Sprintf("not reached within %d hops: %s", traceMaxHops, strings.Join(hops, ", "))}
}

// extErr is a struct sock_extended_err with its offender and the TTL of
// the probe it answers.
type extErr struct {
	errno              unix.Errno
	origin             uint8
	icmpType, icmpCode uint8
	offender           string
	probeTTL           int
}

func (e extErr) what() string {
	if e.offender != "" {
		return e.errno.Error() + " from " + e.offender
	}
	return e.errno.Error()
}

// readErr reads one message of the socket's error queue.
func readErr(fd int) (extErr, bool) {
	buf := make([]byte, 64)
	oob := make([]byte, 512)
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE)
	if err != nil {
		return extErr{}, false
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return extErr{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_RECVERR || len(m.Data) < 16 {
			continue
		}
		e := extErr{
			errno:    unix.Errno(binary.NativeEndian.Uint32(m.Data[0:4])),
			origin:   m.Data[4],
			icmpType: m.Data[5],
			icmpCode: m.Data[6],
		}
		// The offender (SO_EE_OFFENDER) follows: a struct sockaddr_in.
		if len(m.Data) >= 16+8 && binary.NativeEndian.Uint16(m.Data[16:18]) == unix.AF_INET {
			e.offender = net.IP(m.Data[20:24]).String()
		}
		// The probe's payload comes back with the error: its last byte is the TTL.
		if n == 6 && string(buf[:5]) == "vigil" {
			e.probeTTL = int(buf[5])
		}
		return e, true
	}
	return extErr{}, false
}

// readErrQueue reads one error of an ICMP socket: who answered and what.
func readErrQueue(fd int) (offender, what string, ok bool) {
	e, ok := readErr(fd)
	if !ok {
		return "", "", false
	}
	if e.origin == unix.SO_EE_ORIGIN_ICMP && e.icmpType == 3 {
		return e.offender, unreachableText(e.icmpCode), true
	}
	return e.offender, e.errno.Error(), true
}

func unreachableText(code uint8) string {
	switch code {
	case 0:
		return "network unreachable"
	case 1:
		return "host unreachable"
	case 2:
		return "protocol unreachable"
	case 3:
		return "port unreachable"
	case 9, 10, 13:
		return "administratively prohibited"
	}
	return fmt.Sprintf("destination unreachable, code %d", code)
}

// waitReady waits until deadline (or ctx's, if sooner) for fd to be
// readable or to have an error, and returns its events; false when the time
// ran out first.
func waitReady(ctx context.Context, fd int, deadline time.Time) (int16, bool) {
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return 0, false
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLERR}}
	ms := max(int(wait/time.Millisecond), 1)
	for {
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return 0, false
		}
		return fds[0].Revents, true
	}
}

func roundRTT(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return "<1µs"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// reached says the path ends at the agent's host after n hops.
func reached(n int, hops []string) string {
	unit := "hops"
	if n == 1 {
		unit = "hop"
	}
	return fmt.Sprintf("reached in %d %s: %s", n, unit, strings.Join(hops, ", "))
}
