// Package tdl reads Oz's Template Description Language and turns a
// template into kickstart edits.
//
// The checks follow Oz's tdl.rng schema and TDL.py: elements may come in
// any order, each at most once where the schema says so, and every error
// names the element path and line ("/template/os/arch:6: ...").
//
// Oz applies packages, files and commands over SSH on a second boot of the
// installed system. kiln has no second boot: it applies them in the
// installer's %post, where the target system is mounted and chrooted.
package tdl
