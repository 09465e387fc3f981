import { ExpiryQueue } from './expiry-queue.js';

describe('ExpiryQueue', () => {
  it('sweeps the front up to a time, skipping stale entries without a call, and stops at the first current later one', () => {
    const current = new Map([
      ['a', 1],
      ['c', 3],
      ['d', 4],
    ]);
    const q = new ExpiryQueue<string>();
    q.push('a', 1);
    q.push('b', 2); // stale: `b` was forgotten
    q.push('c', 3);
    q.push('d', 4);
    const dropped: string[] = [];
    q.sweep(3, (k, t) => current.get(k) === t, (k) => dropped.push(k));
    expect(dropped).toEqual(['a', 'c']);
    expect(q.oldest((k, t) => current.get(k) === t)).toEqual({ key: 'd', time: 4 });
  });

  it('an entry recorded again later is stale at its first place and current at its second', () => {
    const current = new Map([['a', 5]]);
    const q = new ExpiryQueue<string>();
    q.push('a', 1);
    q.push('a', 5);
    const dropped: number[] = [];
    q.sweep(4, (k, t) => current.get(k) === t, (_k, t) => dropped.push(t));
    expect(dropped).toEqual([]);
    expect(q.oldest((k, t) => current.get(k) === t)).toEqual({ key: 'a', time: 5 });
  });

  it('keeps order across its compactions', () => {
    const q = new ExpiryQueue<number>();
    for (let i = 0; i < 5_000; i++) q.push(i, i);
    const dropped: number[] = [];
    for (let upTo = 0; upTo < 5_000; upTo += 7) q.sweep(upTo, () => true, (k) => dropped.push(k));
    expect(dropped).toEqual(Array.from({ length: dropped.length }, (_, i) => i));
    expect(q.length).toBe(5_000 - dropped.length);
    expect(q.oldest(() => true)).toEqual({ key: dropped.length, time: dropped.length });
  });
});
