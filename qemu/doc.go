// Package qemu runs installer VMs directly under qemu-system-x86_64: it
// builds the command line, decides between KVM and TCG, supervises the
// process over QMP, watches the installer's logs, and always leaves the
// host clean.
//
// A Config is built from Options and turned into argv by the pure
// Config.Cmdline, which kiln prints for --dry-run. Start runs it: QEMU
// starts paused, connects to sockets kiln listens on in a private 0700
// directory (QMP, the serial console and the Anaconda log port), and is
// resumed only once kiln is listening to everything, so no early event or
// log line is lost. The process runs in its own process group with
// Pdeathsig, so it dies with kiln even when kiln is killed with SIGKILL.
//
// Every failure carries a shell-quoted command line that reproduces the VM
// on its own (Config.Repro), with the log sockets replaced by files.
package qemu
