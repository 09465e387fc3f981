import { ChainError, ChainRpcError } from './chain-client.port.js';
import { backoffDelay, withRetry } from './retry.backoff.js';

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap, with jitter inside ±20 %', () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, { initialMs: 100, maxMs: 500 }, mid))).toEqual([100, 200, 400, 500]);
    expect(backoffDelay(1, { initialMs: 100 }, () => 0)).toBe(80);
    expect(backoffDelay(1, { initialMs: 100 }, () => 0.999999)).toBe(120);
  });
});

describe('withRetry', () => {
  it('waits out retryable failures and returns the first success', async () => {
    const delays: number[] = [];
    let calls = 0;
    const value = await withRetry(
      async () => {
        if (++calls < 3) throw new ChainRpcError('connection refused');
        return 'ok';
      },
      { initialMs: 1, onRetry: (_e, _a, d) => delays.push(d) },
    );
    expect(value).toBe('ok');
    expect(calls).toBe(3);
    expect(delays).toHaveLength(2);
  });

  it('does not retry what cannot get better (a wrong config)', async () => {
    let calls = 0;
    const failing = withRetry(async () => {
      calls++;
      throw new ChainError('wrong_chain', 'serves chain 5', false);
    });
    await expect(failing).rejects.toMatchObject({ code: 'wrong_chain' });
    expect(calls).toBe(1);
  });

  it('gives up after maxAttempts and when aborted', async () => {
    await expect(withRetry(async () => Promise.reject(new ChainRpcError('down')), { maxAttempts: 2, initialMs: 1 })).rejects.toThrow('down');
    const ac = new AbortController();
    const pending = withRetry(async () => Promise.reject(new ChainRpcError('down')), { initialMs: 10_000, signal: ac.signal });
    ac.abort(new Error('shutting down'));
    await expect(pending).rejects.toThrow('shutting down');
  });
});
