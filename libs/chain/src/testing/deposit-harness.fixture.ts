/**
 * The deposit path end to end, minus the bus: scanner → watch → account
 * commands folded through the real account decider, one account per deposit
 * address. Stands in for the chain-listener and deposit consumer in tests, so
 * they can assert on ledger state (I1, I4) instead of on intermediate output.
 */
import { type AccountCommand, type AccountEvent, type AccountState, decideAccount, depositKey, evolveAccount, initialAccountState } from '#domain';
import type { ChainClient, Transfer } from '../chain-client.port.js';
import { creditDepositCommand, reverseDepositCommand } from '../deposit.commands.js';
import { type CreditRef, DepositWatch, chainViewOf, creditRefOf } from '../deposit-watch.js';
import { LogScanner, type LogScannerOptions, type ScanCursor, type ScanResult, startCursor } from '../log-scanner.js';

const AT = '2025-01-01T00:00:00Z';

export class AccountLedger {
  readonly #accounts = new Map<string, { state: AccountState; events: AccountEvent[] }>();

  /** Decides and applies; returns the events the decider produced (none for an idempotent repeat). */
  apply(address: string, cmd: AccountCommand): AccountEvent[] {
    let acc = this.#accounts.get(address);
    if (!acc) {
      const opened: AccountEvent = { type: 'AccountOpened', data: { accountId: `acc${this.#accounts.size}`, name: address, testCredits: 0, at: AT } };
      acc = { state: evolveAccount(initialAccountState(), opened), events: [opened] };
      this.#accounts.set(address, acc);
    }
    const events = decideAccount(cmd, acc.state);
    for (const e of events) evolveAccount(acc.state, e);
    acc.events.push(...events);
    return events;
  }

  balance(address: string): bigint {
    return this.#accounts.get(address)?.state.balance ?? 0n;
  }

  /** The ledger's record of a transfer's key, if it was ever credited. */
  deposit(t: Transfer): { amount: bigint; reversed: boolean } | undefined {
    return this.#accounts.get(t.to)?.state.deposits.get(depositKey(t.chainId, t.txHash, t.logIndex));
  }

  events(address: string): AccountEvent[] {
    return this.#accounts.get(address)?.events ?? [];
  }
}

export interface HarnessOptions extends LogScannerOptions {
  /** Decimals per token contract (EIP-55), as configured. */
  decimals: ReadonlyMap<string, number>;
  startBlock: number;
}

export class DepositHarness {
  readonly watch: DepositWatch;
  readonly scanner: LogScanner;
  /** Transfers the watch asked to credit whose key the ledger already held as reversed (I4 refused them). */
  readonly blocked: Transfer[] = [];
  /** Credits the ledger found already made: replays after a restart; never expected from a watch that lived throughout. */
  readonly duplicates: Transfer[] = [];
  readonly relocated: Array<{ from: CreditRef; to: Transfer }> = [];
  cursor: ScanCursor;
  readonly #decimals: ReadonlyMap<string, number>;

  constructor(
    client: ChainClient,
    readonly addresses: readonly string[],
    options: HarnessOptions,
    /** The account streams outlive a listener restart: pass the old harness's ledger to model one. */
    readonly ledger = new AccountLedger(),
  ) {
    this.scanner = new LogScanner(client, options);
    this.watch = new DepositWatch({ confirmations: options.confirmations ?? 1 });
    this.cursor = startCursor(options.startBlock);
    this.#decimals = options.decimals;
  }

  /** One scan step and what it means for the ledger; the cursor moves only if the step succeeded. */
  async step(): Promise<ScanResult> {
    const step = await this.scanner.step(this.cursor, this.addresses);
    this.apply(step);
    this.cursor = step.newCursor;
    return step;
  }

  /** Steps until caught up. */
  async poll(maxSteps = 1000): Promise<ScanResult[]> {
    const steps: ScanResult[] = [];
    for (let i = 0; i < maxSteps; i++) {
      const s = await this.step();
      steps.push(s);
      if (s.caughtUp) return steps;
    }
    throw new Error('scanner did not catch up');
  }

  apply(step: ScanResult): void {
    this.watch.observe(step);
    const d = this.watch.assess(chainViewOf(step));
    for (const c of d.credit) {
      const decimals = this.#decimals.get(c.transfer.token);
      if (decimals === undefined) throw new Error(`no decimals configured for ${c.transfer.token}`);
      if (this.ledger.apply(c.transfer.to, creditDepositCommand(c.transfer, decimals, AT)).length === 0) {
        // I4 refused it: a comeback under a reversed key, or a replay of a credit made before a restart.
        (this.ledger.deposit(c.transfer)?.reversed ? this.blocked : this.duplicates).push(c.transfer);
      }
      this.watch.credited(c.identity, creditRefOf(c.transfer));
    }
    for (const r of d.reverse) {
      const to = this.watch.entry(r.identity)!.sightings[0]!.to;
      this.ledger.apply(to, reverseDepositCommand(r.credit, r.reason, AT));
      this.watch.reversed(r.identity, r.credit);
    }
    for (const b of d.blocked) if (!this.blocked.includes(b.transfer)) this.blocked.push(b.transfer);
    for (const r of d.relocated) if (!this.relocated.some((x) => x.to === r.now)) this.relocated.push({ from: r.credit, to: r.now });
    this.watch.forget(d.final);
  }
}
