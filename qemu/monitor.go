package qemu

import (
	"regexp"
	"strings"
)

// FailureMonitor decides whether a log line means the install has failed.
// It keeps a little state, because one pattern ("Call Trace:") is fatal
// only in the right context.
type FailureMonitor struct {
	// inKernelWarning is set between a kernel "WARNING:" or "cut here" line
	// and the end of its report, where a Call Trace is harmless.
	inKernelWarning bool
}

// fatalSubstrings are lines Anaconda (and the kernel under it) prints only
// when an install cannot go on. The list follows livemedia-creator's log
// monitor, which has caught these in Fedora and RHEL builds for years.
var fatalSubstrings = []string{
	"Traceback (most recent call last)",
	"Traceback (",
	"traceback script(s) have been run",
	"Out of memory:",
	"insufficient disk space:",
	"Not enough disk space to download the packages",
	"error populating transaction after",
	"crashed on signal",
	"packaging: Missed: NoSuchPackage",
	"packaging: Installation failed",
	"The following error occurred while installing.  This is a fatal error",
	"The following error occurred while installing. This is a fatal error",
	"Error in POSTIN scriptlet in rpm package",
	"kickstart file could not be parsed",
	"The installation was stopped due to an error",
}

var fatalPatterns = []*regexp.Regexp{
	regexp.MustCompile(`Process [0-9]+ \(anaconda\) of user [0-9]+ dumped core`),
	// A base repo on the install media itself is allowed to be "not valid"
	// while Anaconda probes it.
	regexp.MustCompile(`packaging: base repo .* not valid`),
	regexp.MustCompile(`packaging: .* requires .*`),
}

var (
	kernelWarningStart = regexp.MustCompile(`WARNING: CPU: |------------\[ cut here \]------------`)
	kernelWarningEnd   = regexp.MustCompile(`---\[ end trace [0-9a-f]+ \]---`)
	kernelFatalStart   = regexp.MustCompile(`\bBUG: |\bOops: |general protection fault|kernel BUG at`)
	cdromRepo          = regexp.MustCompile(`base repo \((CDROM|file)`)
)

// Panic reports whether line is the kernel's own panic message. It is
// a crash, not an installer error, whether or not pvpanic reports it.
func (m *FailureMonitor) Panic(line string) bool {
	return strings.Contains(line, "Kernel panic - not syncing")
}

// Fatal reports whether line shows that the install failed.
func (m *FailureMonitor) Fatal(line string) bool {
	if strings.Contains(line, "IGNORED") {
		return false
	}
	switch {
	case kernelFatalStart.MatchString(line):
		m.inKernelWarning = false
		return true
	case kernelWarningStart.MatchString(line):
		m.inKernelWarning = true
		return false
	case kernelWarningEnd.MatchString(line):
		m.inKernelWarning = false
		return false
	}
	if strings.Contains(line, "Call Trace:") {
		// A kernel WARNING prints a Call Trace too, and the install goes
		// on; a trace outside a warning belongs to an oops or a hung task.
		return !m.inKernelWarning
	}
	for _, s := range fatalSubstrings {
		if strings.Contains(line, s) {
			return true
		}
	}
	for _, re := range fatalPatterns {
		if re.MatchString(line) {
			return !cdromRepo.MatchString(line)
		}
	}
	return false
}
