package hotkeys

import "sync/atomic"

// Sketch geometry: each block is one 64-byte cache line of 16 uint32 cells,
// rows × cellsPerRow. A key picks one block from its hash and one cell per row
// inside it, so an update touches one cache line instead of four.
const (
	sketchRows    = 4
	cellsPerRow   = 4
	cellsPerBlock = sketchRows * cellsPerRow
)

// plane is one sub-window's count-min sketch. Cells are updated with atomic
// adds and read while updates go on; a reader sees some consistent-enough
// value of every cell, which is all an estimate needs.
type plane struct {
	cells []atomic.Uint32
	mask  uint64 // blocks-1
}

func newPlane(blocks int) plane {
	return plane{cells: make([]atomic.Uint32, blocks*cellsPerBlock), mask: uint64(blocks - 1)}
}

// cellIndex returns the cell of key hash h in row r. The block comes from the
// high half of h and the cell within the row from two low bits per row, so the
// choices are independent of each other and of the candidate table's probe,
// which uses the low bits whole.
func (p *plane) cellIndex(h uint64, r int) int {
	block := (h >> 32) & p.mask
	return int(block)*cellsPerBlock + r*cellsPerRow + int((h>>(2*uint(r)))&(cellsPerRow-1))
}

// add counts one occurrence of h and returns the key's estimate in this plane
// (the smallest of its cells, each of which is at least its true count).
func (p *plane) add(h uint64) uint32 {
	block := int((h>>32)&p.mask) * cellsPerBlock
	est := p.cells[block+int(h&3)].Add(1)
	est = min(est, p.cells[block+cellsPerRow+int((h>>2)&3)].Add(1))
	est = min(est, p.cells[block+2*cellsPerRow+int((h>>4)&3)].Add(1))
	return min(est, p.cells[block+3*cellsPerRow+int((h>>6)&3)].Add(1))
}

// addN counts n occurrences of h; eviction folds a candidate's exact counts
// back with it. Counts saturate rather than wrap.
func (p *plane) addN(h uint64, n uint64) {
	for r := range sketchRows {
		c := &p.cells[p.cellIndex(h, r)]
		for {
			old := c.Load()
			v := min(uint64(old)+n, uint64(^uint32(0)))
			if c.CompareAndSwap(old, uint32(v)) {
				break
			}
		}
	}
}

// total returns the number of updates in the plane: every update adds exactly
// one to one cell of every row, so row 0 sums to the total.
func (p *plane) total() uint64 {
	var sum uint64
	for b := 0; b < len(p.cells); b += cellsPerBlock {
		for c := range cellsPerRow {
			sum += uint64(p.cells[b+c].Load())
		}
	}
	return sum
}

func (p *plane) clear() {
	for i := range p.cells {
		p.cells[i].Store(0)
	}
}
