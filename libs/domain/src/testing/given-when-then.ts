/**
 * Given/when/then for any Decider: given these past events, when this command,
 * then these new events (or this error code). Test-only; not exported from the lib.
 *
 * Relies on Jest's `expect` global, so it runs only inside the test runner.
 */
import type { Decider } from '../decider.js';
import { DomainError, type ErrorCode } from '../errors.js';
import { fold } from '../decider.js';

export interface Then<E, S> {
  /** Asserts the decision and returns the state after the given and new events, for further checks. */
  then(expected: readonly E[]): S;
  /** Asserts a refusal with this stable code and returns the error, for its details. */
  then(expected: ErrorCode): DomainError;
}

export interface When<C, E, S> {
  when(command: C): Then<E, S>;
}

export function givenWhenThen<C, E, S>(decider: Decider<C, E, S>): (events?: readonly E[]) => When<C, E, S> {
  return (given = []) => ({
    when(command: C): Then<E, S> {
      function then(expected: readonly E[]): S;
      function then(expected: ErrorCode): DomainError;
      function then(expected: readonly E[] | ErrorCode): S | DomainError {
        const state = fold(decider, given);
        let outcome: { events: E[] } | { error: unknown };
        try {
          outcome = { events: decider.decide(command, state) };
        } catch (error) {
          outcome = { error };
        }
        // Deciders evolve in place for speed, so decide must never touch the state it reads:
        // the command path reuses that state when an append succeeds.
        expect(state).toEqual(fold(decider, given));

        if (typeof expected === 'string') {
          if ('events' in outcome) {
            throw new Error(`expected refusal "${expected}", got events ${stringify(outcome.events)}`);
          }
          expect(outcome.error).toBeInstanceOf(DomainError);
          expect((outcome.error as DomainError).code).toBe(expected);
          return outcome.error as DomainError;
        }
        if ('error' in outcome) {
          const e = outcome.error;
          throw new Error(`expected events, got ${e instanceof DomainError ? `refusal "${e.code}": ${e.message}` : String(e)}`);
        }
        expect(outcome.events).toEqual(expected);
        let after = state;
        for (const e of outcome.events) after = decider.evolve(after, e);
        return after;
      }
      return { then };
    },
  });
}

function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}
