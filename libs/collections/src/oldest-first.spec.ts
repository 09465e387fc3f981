import { trimOldest } from './oldest-first.js';

describe('trimOldest', () => {
  const mapOf = (n: number) => new Map(Array.from({ length: n }, (_, i) => [`k${i}`, i] as const));

  it('leaves a memory within its capacity alone', () => {
    const m = mapOf(16);
    trimOldest(m, 16);
    expect(m.size).toBe(16);
  });

  it('over capacity, forgets the oldest entries down to seven eighths of it, the newest kept in order', () => {
    const m = mapOf(17);
    trimOldest(m, 16);
    expect([...m.keys()]).toEqual(Array.from({ length: 14 }, (_, i) => `k${i + 3}`));
  });

  it('works on a Set, and an entry used again (deleted and set) counts as new', () => {
    const s = new Set(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    s.delete('a');
    s.add('a');
    trimOldest(s, 8);
    expect([...s]).toEqual(['d', 'e', 'f', 'g', 'h', 'i', 'a']);
  });

  it('spares the entries `keep` asks for, in their place, and tells `forgotten` of each one it deletes', () => {
    const m = mapOf(10);
    const forgotten: string[] = [];
    trimOldest(m, 8, (k) => k === 'k0' || k === 'k2', (k) => forgotten.push(k));
    expect([...m.keys()]).toEqual(['k0', 'k2', 'k5', 'k6', 'k7', 'k8', 'k9']);
    expect(forgotten).toEqual(['k1', 'k3', 'k4']);
  });

  it('stays cheap as a bounded memory: 1,000,000 inserts at 200,000 entries in well under a second', () => {
    const m = new Map<number, number>();
    const started = performance.now();
    for (let i = 0; i < 1_000_000; i++) {
      m.set(i, i);
      trimOldest(m, 200_000);
    }
    expect(m.size).toBeLessThanOrEqual(200_000);
    expect(m.has(999_999)).toBe(true);
    // Deleting one at a time from the front took ~33 µs per insert at this size (~27 s here).
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
