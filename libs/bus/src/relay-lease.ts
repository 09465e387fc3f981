/**
 * One relay per event log, however many instances are started with one: a
 * lease kept in the log itself (`relay-lease-<name>`), the one store every
 * instance shares. Whoever appends `RelayLeaseTaken` at the stream's expected
 * revision relays; it renews the lease every `renewMs` with the position it
 * has published up to, and the others stand by. When the holder stops renewing
 * for `ttlMs` (a crash, a lost store), a standby takes the lease over and
 * starts from the later of its own checkpoint and the position in the lease,
 * so it republishes at most what the last holder published after its last
 * renewal, which consumers absorb (they are idempotent). A holder stopped
 * gracefully gives the lease back, and a standby takes over at its next look.
 *
 * A holder fences itself: when its renewal is refused (another instance took
 * the lease) or has not succeeded for `ttlMs`, it stops relaying before a
 * standby may start. Clocks are compared across instances, so a skew of
 * seconds shortens or lengthens the takeover by as much; a stretch where two
 * relay at once only publishes some pages twice.
 */
import { ConcurrencyError, type EventStore } from '#eventstore';
import type { Relay } from './relay.js';

export interface RelayLeaseOptions {
  /** This instance, as the lease names it (host and process id, say). */
  holder: string;
  /** The lease's name: one lease per relay name. */
  name?: string;
  /** A lease not renewed for this long may be taken over. Default 15 s. */
  ttlMs?: number;
  /** How often the holder renews and a standby looks. Default 5 s. */
  renewMs?: number;
  now?: () => number;
  onError?: (error: unknown) => void;
  /** Told when this instance starts or stops relaying. */
  onChange?: (leading: boolean) => void;
}

interface LeaseData {
  holder: string;
  at: string;
  /** The log position the holder had published up to, as a decimal string (positions are bigints). */
  position: string;
}

type LeaseEventType = 'RelayLeaseTaken' | 'RelayLeaseRenewed' | 'RelayLeaseReleased';

interface LeaseState {
  revision: bigint | undefined;
  type: LeaseEventType | undefined;
  data: LeaseData | undefined;
}

export const relayLeaseStream = (name: string): string => `relay-lease-${name}`;

export class RelayLease {
  private readonly stream: string;
  private readonly ttlMs: number;
  private readonly renewMs: number;
  private readonly now: () => number;
  /** The revision of this holder's last append, while it holds the lease. */
  private held: bigint | undefined;
  private lastRenewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private tick: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly store: EventStore,
    private readonly relay: Relay,
    private readonly options: RelayLeaseOptions,
  ) {
    this.stream = relayLeaseStream(options.name ?? 'relay');
    this.ttlMs = options.ttlMs ?? 15_000;
    this.renewMs = options.renewMs ?? 5_000;
    this.now = options.now ?? Date.now;
    if (this.renewMs * 2 > this.ttlMs) throw new RangeError('relay lease: renewMs must be at most half of ttlMs');
  }

  get leading(): boolean {
    return this.held !== undefined;
  }

  /** Looks at once, then every `renewMs`. */
  start(): void {
    const step = () => {
      this.tick = this.tick.then(() => this.step()).catch((error: unknown) => this.options.onError?.(error));
    };
    step();
    this.timer = setInterval(step, this.renewMs);
  }

  private async step(): Promise<void> {
    if (this.stopped) return;
    if (this.held !== undefined) return this.renew();
    const state = await this.read();
    const at = this.now();
    const free =
      state.type === undefined ||
      state.type === 'RelayLeaseReleased' ||
      state.data!.holder === this.options.holder ||
      at - Date.parse(state.data!.at) >= this.ttlMs;
    if (!free) return;
    const from = BigInt(state.data?.position ?? '0');
    if (!(await this.append('RelayLeaseTaken', from, state.revision ?? 'no_stream'))) return;
    this.lastRenewedAt = at;
    this.relay.start(from);
    this.options.onChange?.(true);
  }

  private async renew(): Promise<void> {
    try {
      if (await this.append('RelayLeaseRenewed', this.relay.checkpoint, this.held!)) {
        this.lastRenewedAt = this.now();
        return;
      }
    } catch (error) {
      this.options.onError?.(error);
      // Not renewed for a whole lease: a standby may be relaying by now.
      if (this.now() - this.lastRenewedAt < this.ttlMs - this.renewMs) return;
    }
    await this.stepDown();
  }

  private async stepDown(): Promise<void> {
    this.held = undefined;
    await this.relay.stop();
    this.options.onChange?.(false);
  }

  /** Appends at the expected revision; false when another instance moved the stream first. */
  private async append(type: LeaseEventType, position: bigint, expected: bigint | 'no_stream'): Promise<boolean> {
    const data: LeaseData = { holder: this.options.holder, at: new Date(this.now()).toISOString(), position: position.toString() };
    try {
      this.held = (await this.store.append(this.stream, [{ type, data }], expected)).nextExpectedRevision;
      return true;
    } catch (error) {
      if (error instanceof ConcurrencyError) return false;
      throw error;
    }
  }

  private async read(): Promise<LeaseState> {
    const last = await this.store.lastEvent(this.stream);
    if (last === undefined) return { revision: undefined, type: undefined, data: undefined };
    return { revision: last.revision, type: last.type as LeaseEventType, data: last.data as LeaseData };
  }

  /** Stops relaying and gives the lease back, so a standby takes over at its next look. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.tick;
    if (this.held === undefined) return;
    const expected = this.held;
    await this.stepDown();
    try {
      await this.append('RelayLeaseReleased', this.relay.checkpoint, expected);
    } catch (error) {
      // It runs out instead.
      this.options.onError?.(error);
    }
    this.held = undefined;
  }
}
