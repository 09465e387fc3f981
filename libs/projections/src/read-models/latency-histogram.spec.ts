import { bucketOf, bucketSeconds, LAST_BUCKET, percentileSeconds } from './latency-histogram.js';

/** Exact nearest-rank percentile: the ⌈p·n⌉-th smallest value. */
const exact = (sorted: number[], p: number) => sorted[Math.max(1, Math.ceil(p * sorted.length)) - 1];

describe('latency histogram percentiles', () => {
  it('are within 2.47 % of the exact nearest-rank value for latencies from 0.1 s up', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 200; round++) {
      const n = 1 + Math.floor(random() * 500);
      // Log-uniform from 0.1 s to ~3 h, the shape of real delivery times (seconds, with a long tail).
      const ms = Array.from({ length: n }, () => 100 * Math.exp(random() * Math.log(100_000)));
      const counts = new Map<number, number>();
      for (const v of ms) counts.set(bucketOf(v), (counts.get(bucketOf(v)) ?? 0) + 1);
      const sorted = [...ms].sort((a, b) => a - b);
      for (const p of [0.5, 0.95]) {
        const want = exact(sorted, p) / 1000;
        const got = percentileSeconds(counts, p) as number;
        // 2.47 % from the bucket plus 0.5 ms from rounding the answer to milliseconds.
        expect(Math.abs(got - want)).toBeLessThanOrEqual(want * 0.0247 + 0.0005);
      }
    }
  });

  it('puts sub-0.1 s latencies (and clock skew) in bucket 0, reported as 0.05 s', () => {
    expect(bucketOf(-5)).toBe(0);
    expect(bucketOf(99)).toBe(0);
    expect(bucketOf(100)).toBe(1);
    expect(bucketSeconds(0)).toBe(0.05);
    expect(percentileSeconds([[0, 3]], 0.5)).toBe(0.05);
  });

  it('clamps beyond 7 days and is null when empty', () => {
    expect(bucketOf(30 * 24 * 3600 * 1000)).toBe(LAST_BUCKET);
    expect(percentileSeconds([], 0.5)).toBeNull();
  });
});
