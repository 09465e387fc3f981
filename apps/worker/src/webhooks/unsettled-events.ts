/**
 * Events the webhook sender has taken from its relay but not made durable: in the post-first mode
 * (the webhook thread), a new event's POST goes out with no delivery row, and only a failure is
 * recorded (its retry row). Until then the event is here, and the relay's saved checkpoint stays
 * below the first of them (`RelayOptions.heldFrom`): a crash relays it again, and it is sent again
 * (at least once; `event_id` lets the customer drop the repeat). An event is settled when its POST
 * succeeded, or when its row is written.
 */
export class UnsettledEvents {
  /** Event id → its log position. */
  private readonly open = new Map<string, number>();
  /** Events ever taken: how a reader tells whether the sender had anything to post since it last looked. */
  taken = 0;

  /** `onSettled`: called after each settlement (the thread saves the relay's checkpoint soon after). */
  constructor(private readonly onSettled: () => void = () => undefined) {}

  add(eventId: string, position: number): void {
    this.open.set(eventId, position);
    this.taken++;
  }

  settle(eventId: string): void {
    if (this.open.delete(eventId)) this.onSettled();
  }

  has(eventId: string): boolean {
    return this.open.has(eventId);
  }

  /** The lowest log position not yet durable; undefined when every event taken is settled. */
  first(): number | undefined {
    let min: number | undefined;
    // At most the POSTs in flight (endpoints × their concurrency): a scan is cheap.
    for (const p of this.open.values()) if (min === undefined || p < min) min = p;
    return min;
  }

  get size(): number {
    return this.open.size;
  }
}
