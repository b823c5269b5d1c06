package qemu

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
)

// RelayCommand is the hidden subcommand a relay process is run as: QEMU's
// user network, under restrict=on, reaches the host only through guestfwd
// rules, and a guestfwd "cmd:" rule starts one process per guest
// connection, its stdin and stdout being the connection.
const RelayCommand = "internal-relay"

// RelayFwd forwards the guest's connections to guestAddr (as
// "10.0.2.2:8080") to hostAddr on the host, through exe run as
// "exe internal-relay hostAddr" for each connection.
func RelayFwd(guestAddr, hostAddr, exe string) GuestFwd {
	return GuestFwd{Addr: guestAddr, Target: "cmd:" + ShellQuote([]string{exe, RelayCommand, hostAddr})}
}

// Relay connects to addr and copies in to it and it to out until both
// directions end: the body of a relay process.
func Relay(addr string, in io.Reader, out io.Writer) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(c, in)
		// The guest closed its side: let the server see the end of the
		// request, and keep reading its reply.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	_, err = io.Copy(out, c)
	if err != nil && !strings.Contains(err.Error(), "use of closed") {
		return fmt.Errorf("relay: %w", err)
	}
	// The server closed: nothing more can go back to the guest.
	return nil
}
