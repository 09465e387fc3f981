import { deadlineSignal } from './deadline.js';

describe('deadlineSignal: a timeout that cannot be garbage collected away', () => {
  it('aborts after its time with a TimeoutError, like AbortSignal.timeout', async () => {
    const d = deadlineSignal(20, new AbortController().signal);
    await new Promise((r) => setTimeout(r, 60));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).name).toBe('TimeoutError');
  });

  it('aborts at once with the other signal, with its reason', () => {
    const closing = new AbortController();
    const d = deadlineSignal(10_000, closing.signal);
    closing.abort(new Error('closed'));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).message).toBe('closed');
    d.clear();
    const already = deadlineSignal(10_000, closing.signal);
    expect(already.signal.aborted).toBe(true);
    already.clear();
  });

  it('clear() stops both: no abort later, nothing left listening on the other signal', async () => {
    const closing = new AbortController();
    const d = deadlineSignal(20, closing.signal);
    d.clear();
    closing.abort();
    await new Promise((r) => setTimeout(r, 60));
    expect(d.signal.aborted).toBe(false);
  });

  it('fires even when nothing but the timer holds it, across garbage collections', async () => {
    const d = deadlineSignal(50, new AbortController().signal);
    // Churn the heap so collections run while the deadline is pending.
    for (let i = 0; i < 20; i++) {
      Array.from({ length: 50_000 }, (_, k) => ({ k }));
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 80));
    expect(d.signal.aborted).toBe(true);
  });

});
