import { depositIndexDecider, type DepositIndexCommand } from './deposit-index.decider.js';
import { DepositIndexEvent as DepositIndexEventSchema, type DepositIndexEvent } from './deposit-index.events.js';
import { givenWhenThen } from './testing/given-when-then.js';

const given = givenWhenThen(depositIndexDecider);
const T0 = '2026-03-01T00:00:00.000Z';
const allocate = (accountId: string): DepositIndexCommand => ({ type: 'AllocateDepositIndex', accountId, at: T0 });
const allocated = (accountId: string, index: number): DepositIndexEvent => ({ type: 'DepositIndexAllocated', data: { accountId, index, at: T0 } });

describe('deposit index allocation: one index per account, never two accounts on one index', () => {
  it('gives the first account index 0', () => {
    const state = given([]).when(allocate('acc_a')).then([allocated('acc_a', 0)]);
    expect(state.byAccount.get('acc_a')).toBe(0);
    expect(state.next).toBe(1);
  });

  it('gives the next account the next index: the event count, which is the revision it is appended at', () => {
    given([allocated('acc_a', 0), allocated('acc_b', 1)]).when(allocate('acc_c')).then([allocated('acc_c', 2)]);
  });

  it('answers an account that asks again with nothing new, so a retried request burns no index', () => {
    const state = given([allocated('acc_a', 0), allocated('acc_b', 1)]).when(allocate('acc_a')).then([]);
    expect(state.byAccount.get('acc_a')).toBe(0);
    expect(state.next).toBe(2);
  });

  it('keeps an account on its first index if a stale writer ever allocated it twice', () => {
    const state = given([allocated('acc_a', 0), allocated('acc_a', 1)]).when(allocate('acc_b')).then([allocated('acc_b', 2)]);
    expect(state.byAccount.get('acc_a')).toBe(0);
  });

  it('builds events that pass the stored schema', () => {
    expect(DepositIndexEventSchema.parse(allocated('acc_a', 7))).toEqual(allocated('acc_a', 7));
    expect(DepositIndexEventSchema.safeParse(allocated('acc_a', 2 ** 31)).success).toBe(false);
  });
});
