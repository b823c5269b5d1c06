// Package kickstart reads, checks, edits and renders Anaconda kickstart files.
//
// The parser follows the rules Anaconda itself applies through pykickstart:
// commands are split with POSIX shell quoting, sections run from their
// header to %end, %include and %ksappend pull in other files, and each
// syntax version (RHEL8, RHEL9, F40, ...) has its own table of commands and
// options. The tables live in grammar.txt; they were written from the
// kickstart reference and checked line by line against pykickstart's
// ksvalidator, which the opt-in corpus test still uses as an oracle.
//
// Parsing never stops at the first mistake: every error and warning in a
// file is collected as a Diagnostic that names the file and line, including
// the included file where the mistake lies. A parsed File keeps every input
// byte, so rendering it without edits reproduces the input exactly, and the
// edits kiln needs (a poweroff, a rewritten repo URL, an extra %post) touch
// only the lines they change.
package kickstart
