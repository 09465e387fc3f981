/**
 * A decider (Emmett's `typing/decider.ts`): pure functions, no I/O, no clock.
 * `decide` turns a command and the current state into new events (or throws a
 * DomainError); `evolve` folds one event into the state.
 */
export interface Decider<Command, Event, State> {
  decide(command: Command, state: State): Event[];
  evolve(state: State, event: Event): State;
  initialState(): State;
}

/** A stored or new event as the domain sees it. */
export interface DomainEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
}

export function fold<E, S>(decider: Pick<Decider<unknown, E, S>, 'evolve' | 'initialState'>, events: Iterable<E>): S {
  let state = decider.initialState();
  for (const e of events) state = decider.evolve(state, e);
  return state;
}
