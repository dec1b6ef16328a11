package testbed

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// reloadTimeout bounds one reload: the config check, the new process taking the sockets
// over and the old one finishing its connections.
const reloadTimeout = 10 * time.Second

// ReloadSocketLine returns a global-section line (for StackOptions.Global) declaring an
// admin stats socket at path that hands haproxy's listening sockets to the next process,
// which ReloadHAProxy needs. Keep path short: Unix socket paths stop at 107 bytes.
func ReloadSocketLine(path string) string {
	return "stats socket " + path + " mode 600 level admin expose-fd listeners"
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// ReloadHAProxy reloads the stack's haproxy without losing a connection, as an operator
// running haproxy without the master-worker mode does:
//
//	bin -f <its haproxy.cfg> -db -x <stats socket> -sf <old pid>
//
// The new process fetches the old one's listening sockets over the stats socket (-x)
// instead of binding its own, then tells the old one to stop accepting, finish its
// connections and exit (-sf). Plain -sf is not enough: on Linux the new process would bind
// a second socket next to the old one (SO_REUSEPORT), the kernel spreads new connections
// over both, and the ones queued on the old socket when it closes are reset. So the config
// must declare ReloadSocketLine's socket; ReloadHAProxy refuses to reload without it.
//
// The handover loses no connection, but with haproxy 2.6 the few requests the old process
// accepted just before it stopped may still be refused by its SPOE filter (see
// TestHAProxyReloadKeepsSeats).
//
// It returns once the old process has exited (status 0) and the new one holds the very
// listening socket the old one had, then s.HAProxy is the new process. Both processes'
// output goes to the same buffer, so s.Logs shows every generation in order. On error
// s.HAProxy is whichever process is still running and nothing else is left behind.
//
// Not the master-worker reload (-W, SIGUSR2 to the master), equally seamless: StartHAProxy
// runs haproxy without -W, and under it the process that changes is a worker the Stack
// never started, so readiness would have to be read from the master's log.
func (s *Stack) ReloadHAProxy(bin string) error {
	old := s.HAProxy
	if ok, err := old.Exited(); ok {
		return fmt.Errorf("reload haproxy: pid %d already exited (%v)", old.Pid(), err)
	}
	cfg, err := configPath(old)
	if err != nil {
		return fmt.Errorf("reload haproxy: %w", err)
	}
	sock, err := exposedSocket(cfg)
	if err != nil {
		return fmt.Errorf("reload haproxy: %w", err)
	}
	inode, err := listenerInode(old.Pid(), s.Frontend)
	if err != nil {
		return fmt.Errorf("reload haproxy: pid %d: %w", old.Pid(), err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("reload haproxy: %s -c rejects %s: %v\n%s", bin, cfg, err, out)
	}
	next, err := startAfter(old, bin, "-f", cfg, "-db", "-x", sock, "-sf", strconv.Itoa(old.Pid()))
	if err != nil {
		return fmt.Errorf("reload haproxy: %w", err)
	}
	deadline := time.Now().Add(reloadTimeout)
	for {
		if ok, err := next.Exited(); ok {
			// A new process failing before it took the sockets over never signalled the
			// old one, which keeps serving as s.HAProxy.
			return fmt.Errorf("reload haproxy: new process exited (%v):\n%s", err, next.Output())
		}
		oldDone, oldErr := old.Exited()
		if oldDone && oldErr != nil {
			s.HAProxy = next
			return fmt.Errorf("reload haproxy: old pid %d exited with %v; want a clean soft stop:\n%s", old.Pid(), oldErr, next.Output())
		}
		if oldDone {
			held, err := holdsInode(next.Pid(), inode)
			if err != nil {
				s.HAProxy = next
				return fmt.Errorf("reload haproxy: %w", err)
			}
			if held {
				s.HAProxy = next
				return nil
			}
		}
		if time.Now().After(deadline) {
			// Keep the process that took the sockets, if one did; stop the other.
			if held, _ := holdsInode(next.Pid(), inode); held {
				old.Stop()
				s.HAProxy = next
			} else {
				next.Stop()
			}
			return fmt.Errorf("reload haproxy: after %s the old pid %d exited: %t and the new pid %d holds the listening socket of %s: want both:\n%s",
				reloadTimeout, old.Pid(), oldDone, next.Pid(), s.Frontend, next.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startAfter runs the successor of old, writing into old's output buffer after a line
// saying what starts, so that one log tells the whole story.
func startAfter(old *Process, bin string, args ...string) (*Process, error) {
	p := &Process{Name: old.Name, out: old.out, done: make(chan struct{})}
	fmt.Fprintf(p.out, "--- testbed: reload: %s %s ---\n", bin, strings.Join(args, " "))
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// configPath returns the -f argument p was started with.
func configPath(p *Process) (string, error) {
	args := p.cmd.Args
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "-f" {
			return args[i+1], nil
		}
	}
	return "", fmt.Errorf("%s was started without -f: %q", p.Name, args)
}

// exposedSocket returns the path of the first stats socket in the config at path that
// exposes the listeners.
func exposedSocket(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) < 3 || w[0] != "stats" || w[1] != "socket" {
			continue
		}
		for i := 3; i+1 < len(w); i++ {
			if w[i] == "expose-fd" && w[i+1] == "listeners" {
				return w[2], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", fmt.Errorf("%s declares no \"stats socket ... expose-fd listeners\" (add testbed.ReloadSocketLine to StackOptions.Global): "+
		"without it the new process binds a socket of its own and connections queued on the old one are reset", filepath.Base(path))
}

// listenerInode returns the inode of the socket listening on addr (an IPv4 address)
// that process pid holds.
func listenerInode(pid int, addr string) (uint64, error) {
	inodes, err := listeningInodes(addr)
	if err != nil {
		return 0, err
	}
	for _, ino := range inodes {
		held, err := holdsInode(pid, ino)
		if err != nil {
			return 0, err
		}
		if held {
			return ino, nil
		}
	}
	return 0, fmt.Errorf("holds no socket listening on %s", addr)
}

// Linux sock_diag (linux/inet_diag.h, linux/sock_diag.h).
const (
	sockDiagByFamily   = 20 // SOCK_DIAG_BY_FAMILY
	tcpListen          = 10 // TCP_LISTEN
	sizeofDiagReq      = 56 // struct inet_diag_req_v2
	sizeofDiagMsg      = 72 // struct inet_diag_msg
	diagMsgSportAt     = 4  // inet_diag_msg.id.idiag_sport, big endian
	diagMsgSrcAt       = 8  // inet_diag_msg.id.idiag_src[0], an IPv4 address
	diagMsgInodeAt     = 68 // inet_diag_msg.idiag_inode
	diagReceiveTimeout = 5 * time.Second
)

// listeningInodes returns the inodes of the TCP sockets listening on addr (an IPv4
// address): one when a listener is shared by two processes, two when a second process bound
// its own with SO_REUSEPORT. It asks the kernel over sock_diag netlink for listening sockets
// only, as ss -l does: /proc/net/tcp also lists every TIME_WAIT socket, tens of thousands
// under the tests' connection churn, and takes seconds to read on a loaded machine.
func listeningInodes(addr string) ([]uint64, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("listeners on %q: want an IPv4 address and port", addr)
	}
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(diagReceiveTimeout.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	req := make([]byte, syscall.SizeofNlMsghdr+sizeofDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1) // sequence number
	body := req[syscall.SizeofNlMsghdr:]
	body[0] = syscall.AF_INET
	body[1] = syscall.IPPROTO_TCP
	// Only LISTEN: the kernel then walks its listening table and skips the established one.
	ne.PutUint32(body[4:], 1<<tcpListen)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag request: %w", err)
	}
	want := ap.Addr().As4()
	var inodes []uint64
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag answer: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return inodes, nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
						return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(errno))
					}
				}
				return nil, errors.New("sock_diag: error answer")
			}
			d := m.Data
			if len(d) < sizeofDiagMsg {
				return nil, fmt.Errorf("sock_diag: %d-byte answer; want %d", len(d), sizeofDiagMsg)
			}
			if binary.BigEndian.Uint16(d[diagMsgSportAt:]) == ap.Port() && [4]byte(d[diagMsgSrcAt:diagMsgSrcAt+4]) == want {
				inodes = append(inodes, uint64(ne.Uint32(d[diagMsgInodeAt:])))
			}
		}
	}
}

// holdsInode reports whether process pid has a file descriptor on socket inode ino. A
// process that has exited holds nothing.
func holdsInode(pid int, ino uint64) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf("socket:[%d]", ino)
	for _, fd := range fds {
		// An fd closed between ReadDir and Readlink is not the one we look for.
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && target == want {
			return true, nil
		}
	}
	return false, nil
}
