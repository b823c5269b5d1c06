// Package parttable reads and writes the partition tables PCs boot
// from: the MBR's four entries (UEFI 2.10 section 5.2) and the GUID
// Partition Table (section 5.3), with its backup at the end of the disk.
// It is a leaf library: it knows disks as io.ReaderAt and io.WriterAt and
// nothing of ISOs, installers or QEMU.
package parttable
