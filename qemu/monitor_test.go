package qemu

import "testing"

func TestFailureMonitor(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		fatal []bool
	}{
		{"traceback", []string{"INFO anaconda: starting", "Traceback (most recent call last):"}, []bool{false, true}},
		{"fatal install error", []string{"The following error occurred while installing.  This is a fatal error and installation will be aborted."}, []bool{true}},
		{"missing package", []string{"INFO packaging: Missed: NoSuchPackage: nosuch"}, []bool{true}},
		{"transaction", []string{"ERROR: error populating transaction after 10 retries: failure"}, []bool{true}},
		{"oom", []string{"[  99.1] Out of memory: Killed process 812 (anaconda)"}, []bool{true}},
		{"signal", []string{"anaconda crashed on signal 11"}, []bool{true}},
		{"core", []string{"Process 1234 (anaconda) of user 0 dumped core."}, []bool{true}},
		{"ignored", []string{"Traceback ( but IGNORED by policy"}, []bool{false}},
		{"harmless kernel warning", []string{
			"------------[ cut here ]------------",
			"WARNING: CPU: 0 PID: 1 at drivers/gpu/drm/drm_atomic.c:1 foo+0x1/0x2",
			"Call Trace:",
			" <TASK>",
			"---[ end trace 0000000000000000 ]---",
			"INFO anaconda: still going",
		}, []bool{false, false, false, false, false, false}},
		{"oops", []string{"BUG: kernel NULL pointer dereference, address: 0000000000000000", "Call Trace:"}, []bool{true, true}},
		{"hung task trace", []string{"INFO: task anaconda:812 blocked for more than 120 seconds.", "Call Trace:"}, []bool{false, true}},
		{"cdrom repo probing", []string{"packaging: base repo (CDROM/file:///run/install/repo) not valid -- removing it"}, []bool{false}},
		{"net repo invalid", []string{"packaging: base repo (http://mirror/os) not valid"}, []bool{true}},
		{"postin", []string{"Error in POSTIN scriptlet in rpm package httpd"}, []bool{true}},
		{"kernel panic is not an installer error", []string{"[    2.0] Kernel panic - not syncing: Attempted to kill init!"}, []bool{false}},
		{"progress", []string{"Installing httpd (3/40)", "Configuring nginx.x86_64"}, []bool{false, false}},
		// d-i's syslog: "DEBUG: " holds "BUG: ".
		{"debug lines", []string{"Dec  1 18:55:58 netcfg[1843]: DEBUG: State is now 0"}, []bool{false}},
	}
	if !(&FailureMonitor{}).Panic("[    2.0] Kernel panic - not syncing: sysrq triggered crash") {
		t.Error("kernel panic not recognised")
	}
	for _, tt := range tests {
		m := &FailureMonitor{}
		for i, l := range tt.lines {
			if got := m.Fatal(l); got != tt.fatal[i] {
				t.Errorf("%s: line %d %q: fatal = %v, want %v", tt.name, i, l, got, tt.fatal[i])
			}
		}
	}
}
