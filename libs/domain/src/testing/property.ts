/**
 * One property of a decider over random inputs, as the `*.properties.spec.ts` files state them:
 * the check returns what it found wrong with one input (nothing when the property holds) and
 * names the cases it met; a case that never came up in any run fails the test, so a property
 * cannot pass by never meeting what it is about. Test-only, like given-when-then.
 *
 * Relies on Jest's `expect` global. Wrongs are gathered and asserted once an input: an `expect`
 * a step made these properties several times slower.
 */
import fc from 'fast-check';

export interface PropertyRuns<Case extends string> {
  numRuns: number;
  /** Cases the property is about, each of which must come up at least once. */
  mustMeet?: readonly Case[];
}

export function holds<T, Case extends string = never>(
  arbitrary: fc.Arbitrary<T>,
  check: (value: T, met: (c: Case) => void) => readonly unknown[],
  { numRuns, mustMeet = [] }: PropertyRuns<Case>,
): void {
  const met = new Set<Case>();
  fc.assert(
    fc.property(arbitrary, (value) => {
      expect(check(value, (c) => met.add(c))).toEqual([]);
    }),
    { numRuns },
  );
  expect(mustMeet.filter((c) => !met.has(c))).toEqual([]);
}
