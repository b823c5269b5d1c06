package kickstart

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a kickstart syntax version. Versions are ordered the way
// pykickstart orders them: each RHEL release sits just after the Fedora
// release it branched from, so RHEL9 > F34 and RHEL9 < F35.
type Version int

// The versions kiln knows. Their values are pykickstart's, which keeps the
// ordering (and so the ranges in grammar.txt) the same as the reference.
const (
	RHEL3  Version = 900
	FC3    Version = 1000
	RHEL4  Version = 1100
	FC4    Version = 2000
	FC5    Version = 3000
	FC6    Version = 4000
	RHEL5  Version = 4100
	F7     Version = 5000
	F8     Version = 6000
	RHEL6  Version = 11100
	F18    Version = 16000
	F21    Version = 19000
	RHEL7  Version = 19100
	F28    Version = 26000
	RHEL8  Version = 26100
	F34    Version = 34000
	RHEL9  Version = 34100
	F40    Version = 40000
	RHEL10 Version = 40100
	F45    Version = 45000
	RHEL11 Version = 46100

	// DefaultVersion is used when neither the caller nor the file names one.
	DefaultVersion = RHEL9
)

// fedoraVersion returns the value of Fedora release n (FC3..FC6, F7..F45).
func fedoraVersion(n int) Version {
	switch {
	case n >= 3 && n <= 6:
		return Version((n - 2) * 1000)
	case n >= 7 && n <= 29:
		return Version((n - 2) * 1000)
	case n >= 30 && n <= 45:
		return Version(n * 1000)
	}
	return 0
}

// rhelVersion returns the value of RHEL release n.
func rhelVersion(n int) Version {
	switch n {
	case 3:
		return RHEL3
	case 4:
		return RHEL4
	case 5:
		return RHEL5
	case 6:
		return RHEL6
	case 7:
		return RHEL7
	case 8:
		return RHEL8
	case 9:
		return RHEL9
	case 10:
		return RHEL10
	case 11:
		return RHEL11
	}
	return 0
}

// Versions returns every known version, oldest first.
func Versions() []Version {
	var vs []Version
	for _, n := range []int{3, 4, 5, 6} {
		vs = append(vs, fedoraVersion(n))
	}
	for n := 7; n <= 45; n++ {
		vs = append(vs, fedoraVersion(n))
	}
	for n := 3; n <= 11; n++ {
		vs = append(vs, rhelVersion(n))
	}
	sortVersions(vs)
	return vs
}

func sortVersions(vs []Version) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && vs[j] < vs[j-1]; j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

// String returns the canonical name: RHEL9, F40, FC3.
func (v Version) String() string {
	if v%1000 == 100 {
		for n := 3; n <= 11; n++ {
			if rhelVersion(n) == v {
				return "RHEL" + strconv.Itoa(n)
			}
		}
	}
	if v == RHEL3 {
		return "RHEL3"
	}
	for n := 3; n <= 45; n++ {
		if fedoraVersion(n) == v {
			if n <= 6 {
				return "FC" + strconv.Itoa(n)
			}
			return "F" + strconv.Itoa(n)
		}
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// ParseVersion reads a version name as kickstart files and users write it:
// "RHEL9", "rhel9", "RHEL9.4", "F40", "fedora40", "FC3", "DEVEL".
func ParseVersion(s string) (Version, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "DEVEL" {
		return F45, nil
	}
	var prefix string
	for _, p := range []string{"RHEL", "FEDORA", "FC", "F", "CENTOS", "ROCKY", "ALMALINUX", "ALMA", "EL"} {
		if strings.HasPrefix(t, p) {
			prefix = p
			break
		}
	}
	num := strings.TrimPrefix(t, prefix)
	num = strings.TrimLeft(num, "-_ ")
	if i := strings.IndexByte(num, '.'); i >= 0 {
		num = num[:i]
	}
	n, err := strconv.Atoi(num)
	if prefix == "" || err != nil {
		return 0, fmt.Errorf("unknown kickstart version %q (try RHEL9 or F40)", s)
	}
	var v Version
	switch prefix {
	case "FEDORA", "FC", "F":
		v = fedoraVersion(n)
	default:
		v = rhelVersion(n)
	}
	if v == 0 {
		return 0, fmt.Errorf("unknown kickstart version %q (try RHEL9 or F40)", s)
	}
	return v, nil
}
