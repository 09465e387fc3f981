/**
 * A scripted SMSC for the SMPP adapter's failure tests: a bare smpp@0.5
 * server on 127.0.0.1 (port 0) whose every answer a test decides — refuse or
 * ignore the bind, throttle, hold or delay submit_sm_resp, ignore
 * enquire_link, drop sockets, send deliver_sm or unbind at will — and that
 * records what it saw, with the SMSC's own count of unanswered submit_sm.
 * Unlike the simulator it has no engine: nothing happens that a test did not ask for.
 */
import type { AddressInfo } from 'node:net';
import smpp from 'smpp';

export interface SeenSubmit {
  /** 0-based over the server's life. */
  n: number;
  at: number;
  session: number;
  dest: string;
  text: string;
  /** Unanswered submit_sm on this session, this one included, when it arrived. */
  outstanding: number;
  /** Unanswered submit_sm to the same destination on this session, this one included. */
  outstandingToDest: number;
}

/** What to do with one submit_sm: answer now or after `delayMs` (default ROK with a fresh hex id), hold it for `release`, or never answer. */
export type SubmitPlan = { status?: number; messageId?: string; delayMs?: number; before?: (s: smpp.Session, messageId: string) => void } | 'hold' | 'ignore';

export interface Held {
  seen: SeenSubmit;
  session: smpp.Session;
  pdu: smpp.PDU;
}

interface SessionInfo {
  id: number;
  outstanding: number;
  perDest: Map<string, number>;
  bound: boolean;
}

export class ScriptedSmsc {
  systemId = 'nexo';
  password = 'secret';
  /** `accept` checks the credentials; `silent` never answers; a function decides per attempt (0-based). */
  bind: 'accept' | 'silent' | ((attempt: number) => 'accept' | 'silent' | number) = 'accept';
  /** The status of a refused bind (wrong credentials). */
  refuseWith: number = smpp.errors.ESME_RBINDFAIL!;
  answerEnquireLink = true;
  onSubmit: (seen: SeenSubmit, pdu: smpp.PDU) => SubmitPlan = () => ({});

  readonly submits: SeenSubmit[] = [];
  readonly connections: { id: number; at: number }[] = [];
  readonly closes: { id: number; at: number }[] = [];
  readonly bindAttempts: { session: number; at: number; systemId: unknown; password: unknown }[] = [];
  readonly binds: { session: number; at: number }[] = [];
  readonly enquireLinks: { session: number; at: number }[] = [];
  readonly unbinds: { session: number; at: number }[] = [];
  readonly held: Held[] = [];
  maxOutstanding = 0;
  maxOutstandingToDest = 0;

  private readonly server: smpp.Server;
  private readonly info = new Map<smpp.Session, SessionInfo>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private nextSession = 0;
  private nextId = 0x1000;
  private listenPort = 0;

  private constructor() {
    this.server = smpp.createServer({}, (s) => this.onSession(s));
  }

  static async start(): Promise<ScriptedSmsc> {
    const smsc = new ScriptedSmsc();
    await new Promise<void>((resolve, reject) => {
      smsc.server.once('error', reject);
      smsc.server.listen(0, '127.0.0.1', () => {
        smsc.server.off('error', reject);
        smsc.listenPort = (smsc.server.address() as AddressInfo).port;
        resolve();
      });
    });
    return smsc;
  }

  get port(): number {
    return this.listenPort;
  }

  /** Bound sessions still open, oldest first. */
  boundSessions(): smpp.Session[] {
    return [...this.info].filter(([, i]) => i.bound).map(([s]) => s);
  }

  sessionId(s: smpp.Session): number {
    return this.info.get(s)?.id ?? -1;
  }

  /** Answers a held submit_sm now. */
  answer(h: Held, plan: { status?: number; messageId?: string } = {}): string {
    const i = this.held.indexOf(h);
    if (i >= 0) this.held.splice(i, 1);
    return this.reply(h.session, h.pdu, h.seen, plan);
  }

  /** Destroys every socket at once, as an SMSC restart or a cut cable does. */
  dropAll(): void {
    for (const s of [...this.server.sessions]) s.destroy();
  }

  /** Sends a deliver_sm on `s`; resolves with the deliver_sm_resp. */
  deliver(s: smpp.Session, fields: Record<string, unknown>): Promise<smpp.PDU> {
    return new Promise((resolve, reject) => {
      if (!s.deliver_sm(fields, resolve)) reject(new Error('session not writable'));
    });
  }

  /** Sends any request PDU on `s`; resolves with its response. */
  request(s: smpp.Session, command: string, fields: Record<string, unknown> = {}): Promise<smpp.PDU> {
    return new Promise((resolve, reject) => {
      if (!s.send(new smpp.PDU(command, fields), resolve)) reject(new Error('session not writable'));
    });
  }

  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropAll();
    await closed;
  }

  private onSession(s: smpp.Session): void {
    const info: SessionInfo = { id: this.nextSession++, outstanding: 0, perDest: new Map(), bound: false };
    this.info.set(s, info);
    this.connections.push({ id: info.id, at: Date.now() });
    s.on('error', () => undefined);
    s.on('close', () => {
      this.closes.push({ id: info.id, at: Date.now() });
      this.info.delete(s);
    });
    s.on('pdu', (pdu: smpp.PDU) => {
      if (pdu.isResponse()) return;
      switch (pdu.command) {
        case 'bind_transceiver':
          return this.onBind(s, info, pdu);
        case 'enquire_link':
          this.enquireLinks.push({ session: info.id, at: Date.now() });
          if (this.answerEnquireLink) s.send(pdu.response());
          return;
        case 'submit_sm':
          return this.onSubmitSm(s, info, pdu);
        case 'unbind':
          this.unbinds.push({ session: info.id, at: Date.now() });
          info.bound = false;
          s.send(pdu.response());
          return s.close();
        default:
          s.send(pdu.response({ command_status: smpp.errors.ESME_RINVCMDID }));
      }
    });
  }

  private onBind(s: smpp.Session, info: SessionInfo, pdu: smpp.PDU): void {
    const attempt = this.bindAttempts.length;
    this.bindAttempts.push({ session: info.id, at: Date.now(), systemId: pdu.system_id, password: pdu.password });
    const decision = typeof this.bind === 'function' ? this.bind(attempt) : this.bind;
    if (decision === 'silent') return;
    const status =
      typeof decision === 'number' ? decision : pdu.system_id === this.systemId && pdu.password === this.password ? 0 : this.refuseWith;
    if (status !== 0) return void s.send(pdu.response({ command_status: status }));
    info.bound = true;
    this.binds.push({ session: info.id, at: Date.now() });
    s.send(pdu.response({ system_id: 'scripted' }));
  }

  private onSubmitSm(s: smpp.Session, info: SessionInfo, pdu: smpp.PDU): void {
    const dest = String(pdu.destination_addr ?? '');
    info.outstanding++;
    info.perDest.set(dest, (info.perDest.get(dest) ?? 0) + 1);
    const seen: SeenSubmit = {
      n: this.submits.length,
      at: Date.now(),
      session: info.id,
      dest,
      text: submitText(pdu),
      outstanding: info.outstanding,
      outstandingToDest: info.perDest.get(dest)!,
    };
    this.submits.push(seen);
    this.maxOutstanding = Math.max(this.maxOutstanding, seen.outstanding);
    this.maxOutstandingToDest = Math.max(this.maxOutstandingToDest, seen.outstandingToDest);
    const plan = this.onSubmit(seen, pdu);
    if (plan === 'ignore') return;
    if (plan === 'hold') return void this.held.push({ seen, session: s, pdu });
    if (plan.delayMs) this.later(plan.delayMs, () => this.reply(s, pdu, seen, plan));
    else this.reply(s, pdu, seen, plan);
  }

  private reply(s: smpp.Session, pdu: smpp.PDU, seen: SeenSubmit, plan: { status?: number; messageId?: string; before?: (s: smpp.Session, id: string) => void }): string {
    const info = this.info.get(s);
    if (info) {
      info.outstanding--;
      info.perDest.set(seen.dest, info.perDest.get(seen.dest)! - 1);
    }
    const messageId = plan.messageId ?? (this.nextId++).toString(16);
    plan.before?.(s, messageId);
    s.send(plan.status ? pdu.response({ command_status: plan.status }) : pdu.response({ message_id: messageId }));
    return messageId;
  }
}

function submitText(pdu: smpp.PDU): string {
  const field = (pdu.message_payload ?? pdu.short_message) as { message?: unknown } | Buffer | undefined;
  const m = field && !Buffer.isBuffer(field) ? field.message : field;
  return Buffer.isBuffer(m) ? m.toString('latin1') : typeof m === 'string' ? m : '';
}

/** A CarrierLogger that keeps every line, for asserting what was (and was not) logged. */
export function recordingLogger() {
  const lines: { level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> }[] = [];
  const at = (level: 'info' | 'warn' | 'error') => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, msg, fields });
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

/** Settles a promise into a value the test can inspect without an unhandled rejection. */
export function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: { code?: string; detail?: string; message: string; retryable?: boolean } }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: { code?: string; detail?: string; message: string; retryable?: boolean }) => ({ ok: false as const, error }),
  );
}
