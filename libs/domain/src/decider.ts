/**
 * A decider (Emmett's `typing/decider.ts`): pure functions, no I/O, no clock.
 * `decide` turns a command and the current state into new events (or throws a
 * DomainError); `evolve` folds one event into the state.
 */
export interface Decider<Command, Event, State> {
  decide(command: Command, state: State): Event[];
  evolve(state: State, event: Event): State;
  initialState(): State;
  /**
   * How to write the state down, for a decider whose streams grow long (the account's): the
   * command path then keeps snapshots and folds only the events after the latest one.
   */
  snapshot?: StateCodec<State>;
}

/**
 * A state as plain JSON and back. `decode(encode(s))` must equal `s` as folding would have built
 * it; `decode` validates (it reads what storage gives back) and throws on anything else. `version`
 * names the format: snapshots of another version are ignored.
 */
export interface StateCodec<State> {
  version: number;
  encode(state: State): unknown;
  decode(json: unknown): State;
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
