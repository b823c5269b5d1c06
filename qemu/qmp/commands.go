package qmp

import (
	"context"
	"encoding/json"
)

// Status is the reply of query-status.
type Status struct {
	Running    bool   `json:"running"`
	Singlestep bool   `json:"singlestep"`
	Status     string `json:"status"` // "running", "paused", "shutdown", "guest-panicked", ...
}

// QueryStatus returns the VM's run state.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// BlockStats is one device's I/O counters from query-blockstats.
type BlockStats struct {
	Device string `json:"device"`
	QDev   string `json:"qdev"`
	Stats  struct {
		RdBytes      uint64 `json:"rd_bytes"`
		WrBytes      uint64 `json:"wr_bytes"`
		RdOperations uint64 `json:"rd_operations"`
		WrOperations uint64 `json:"wr_operations"`
		FlushOps     uint64 `json:"flush_operations"`
	} `json:"stats"`
}

// QueryBlockstats returns the I/O counters of every block device.
func (c *Client) QueryBlockstats(ctx context.Context) ([]BlockStats, error) {
	var s []BlockStats
	err := c.Execute(ctx, "query-blockstats", nil, &s)
	return s, err
}

// KVM is the reply of query-kvm.
type KVM struct {
	Enabled bool `json:"enabled"`
	Present bool `json:"present"`
}

// QueryKVM says whether KVM is present and in use.
func (c *Client) QueryKVM(ctx context.Context) (KVM, error) {
	var k KVM
	err := c.Execute(ctx, "query-kvm", nil, &k)
	return k, err
}

// Screendump writes the display to filename as a PNG.
func (c *Client) Screendump(ctx context.Context, filename string) error {
	return c.Execute(ctx, "screendump", struct {
		Filename string `json:"filename"`
		Format   string `json:"format"`
	}{filename, "png"}, nil)
}

// SystemPowerdown presses the ACPI power button.
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit ends QEMU at once.
func (c *Client) Quit(ctx context.Context) error {
	return c.Execute(ctx, "quit", nil, nil)
}

// Cont resumes a VM started paused (-S).
func (c *Client) Cont(ctx context.Context) error {
	return c.Execute(ctx, "cont", nil, nil)
}

// ShutdownEvent is the data of SHUTDOWN.
type ShutdownEvent struct {
	Guest  bool   `json:"guest"`
	Reason string `json:"reason"` // "guest-shutdown", "guest-reset", "host-qmp-quit", ...
}

// GuestPanickedEvent is the data of GUEST_PANICKED.
type GuestPanickedEvent struct {
	Action string `json:"action"`
}

// BlockIOErrorEvent is the data of BLOCK_IO_ERROR.
type BlockIOErrorEvent struct {
	Device    string `json:"device"`
	NodeName  string `json:"node-name"`
	Operation string `json:"operation"`
	Action    string `json:"action"`
	NoSpace   bool   `json:"nospace"`
	Reason    string `json:"reason"`
}

// StopEvent is the data of STOP (none).
type StopEvent struct{}

// Decode decodes an event's data into v.
func (e Event) Decode(v any) error {
	if len(e.Data) == 0 {
		return nil
	}
	return json.Unmarshal(e.Data, v)
}
