package iso

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// plainImage is the committed image, unpacked.
func plainImage(t *testing.T) []byte {
	t.Helper()
	return testutil.ReadGzip(t, filepath.Join("testdata", "plain.iso.gz"))
}

// TestOverlayModel lays random writes, file references, moves and
// truncations over the committed image, and the same on a plain byte
// slice. The overlay must read as the slice does at every step, and
// writeImage, which sums the planned bytes while the kernel copies, must
// give the slice's bytes with ImplantMD5's checksum of them.
func TestOverlayModel(t *testing.T) {
	base := plainImage(t)
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "src.iso")
	os.WriteFile(srcPath, base, 0o644)
	added := filepath.Join(dir, "added")
	addedData := bytes.Repeat([]byte("added file "), 30000)
	os.WriteFile(added, addedData, 0o644)
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		src, err := os.Open(srcPath)
		if err != nil {
			t.Fatal(err)
		}
		ov := newOverlay(src, int64(len(base)))
		model := append([]byte(nil), base...)
		grow := func(n int64) {
			if n > int64(len(model)) {
				model = append(model, make([]byte, n-int64(len(model)))...)
			}
		}
		// Edits stay clear of the PVD, whose volume size the checksum
		// reads.
		at := func() int64 { return 17*SectorSize + rng.Int64N(int64(len(model))+1<<20) }
		for op := 0; op < 40; op++ {
			switch rng.IntN(4) {
			case 0:
				off, p := at(), make([]byte, 1+rng.IntN(9000))
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				ov.WriteAt(p, off)
				grow(off + int64(len(p)))
				copy(model[off:], p)
			case 1:
				off, from := at(), rng.Int64N(int64(len(addedData)))
				n := rng.Int64N(int64(len(addedData))-from) + 1
				ov.refer(off, added, from, n)
				grow(off + n)
				copy(model[off:], addedData[from:from+n])
			case 2:
				// From inside the image, as the EFI partition moves.
				from, to := 17*SectorSize+rng.Int64N(int64(len(model))-17*SectorSize-1), at()
				n := 1 + rng.Int64N(min(200000, int64(len(model))-from))
				if err := ov.move(to, from, n); err != nil {
					t.Fatal(err)
				}
				grow(to + n)
				copy(model[to:to+n], append([]byte(nil), model[from:from+n]...))
			case 3:
				size := int64(len(base)) + rng.Int64N(1<<19) // the volume stays whole
				ov.Truncate(size)
				if size < int64(len(model)) {
					model = model[:size]
				} else {
					grow(size)
				}
			}
			got := make([]byte, len(model))
			if n, err := ov.ReadAt(got, 0); n != len(model) || err != nil && err != io.EOF {
				t.Fatalf("seed %d op %d: ReadAt = %d, %v; want %d", seed, op, n, err, len(model))
			}
			if !bytes.Equal(got, model) {
				t.Fatalf("seed %d op %d: the overlay reads differently from the model", seed, op)
			}
		}
		copied := filepath.Join(dir, "copied.iso")
		out, _ := os.Create(copied)
		io.Copy(out, bytes.NewReader(base))
		if err := ov.apply(out); err != nil {
			t.Fatal(err)
		}
		if err := ImplantMD5(out); err != nil {
			t.Fatal(err)
		}
		out.Close()
		hashed := filepath.Join(dir, "hashed.iso")
		out, _ = os.Create(hashed)
		if err := writeImage(out, src, ov, true); err != nil {
			t.Fatal(err)
		}
		out.Close()
		a, _ := os.ReadFile(copied)
		b, _ := os.ReadFile(hashed)
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: writeImage and the copy with ImplantMD5 differ", seed)
		}
		// Only the PVD's application use area may differ from the model.
		app := 16*SectorSize + appUseOffset
		copy(b[app:app+appUseSize], model[app:app+appUseSize])
		if !bytes.Equal(b, model) {
			t.Fatalf("seed %d: the written image differs from the model", seed)
		}
		if ok, err := CheckMD5(bytes.NewReader(a)); !ok || err != nil {
			t.Fatalf("seed %d: CheckMD5 = %v, %v", seed, ok, err)
		}
		ov.Close()
		src.Close()
	}
	check := testutil.RequireTool(t, "checkisomd5")
	if out, err := exec.Command(check, filepath.Join(dir, "hashed.iso")).CombinedOutput(); err != nil {
		t.Errorf("checkisomd5 refuses writeImage's image: %v\n%s", err, out)
	}
}

// TestMediaHashPieces: the checksum does not depend on how the bytes
// are cut, though isomd5sum's fragment sums depend on its 32 KiB reads.
func TestMediaHashPieces(t *testing.T) {
	data := make([]byte, 30*md5Chunk+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	whole := newMediaHash(int64(len(data)) - 100)
	whole.Write(data)
	wantSum, wantFrags := whole.Sum()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		m := newMediaHash(int64(len(data)) - 100)
		for p := data; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(70000))
			m.Write(p[:n])
			p = p[n:]
		}
		if sum, frags := m.Sum(); sum != wantSum || frags != wantFrags {
			t.Fatalf("in pieces: %s %s, whole: %s %s", sum, frags, wantSum, wantFrags)
		}
	}
	if len(wantFrags) != md5Fragments*md5FragmentChars {
		t.Errorf("%d fragment characters, want %d", len(wantFrags), md5Fragments*md5FragmentChars)
	}
}
