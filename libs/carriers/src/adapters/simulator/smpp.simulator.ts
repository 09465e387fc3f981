/**
 * The simulator's SMPP face: an SMSC that takes bind_transceiver, submit_sm
 * and enquire_link, and sends receipts as deliver_sm (esm_class 0x04) with
 * the DLR text and the receipted_message_id / message_state TLVs. It also
 * plays the faults SMPP clients must survive: throttling, dropped sessions,
 * a silent half-open link, receipts whose id is in decimal though the submit
 * answer gave it in hex, and the DLR `text:` field echoing the message.
 */
import type { AddressInfo } from 'node:net';
import smpp from 'smpp';
import { parseVnMobile } from '#domain';
import { silentLogger, type CarrierLogger } from '../../carrier-gateway.port.js';
import { STATUS_TO_MESSAGE_STATE, formatDlrText } from '../../delivery-receipt.codec.js';
import { backoffDelay } from '../../backoff.js';
import { pduText } from '../smpp.pdu.js';
import { SimulatorEngine, type SimReceipt } from './simulator.engine.js';
import type { SimulatorConfig, SimulatorConfigInput } from './simulator.config.js';

const E = smpp.errors;

export interface SmppSimulatorOptions {
  config?: SimulatorConfigInput | SimulatorConfig;
  /** Credentials a bind must present. Default `nexo` / `secret`. */
  systemId?: string;
  password?: string;
  /** `decimal`: receipts carry the message id in decimal while submit_sm_resp gave it in hex. */
  receiptIdFormat?: 'same' | 'decimal';
  /** Keep the last N accepted submissions (destination, text) for tests. 0 (default) keeps none: they hold codes. */
  recordSubmissions?: number;
  /** Sends of one receipt until a deliver_sm_resp ESME_ROK. Default 4. */
  receiptAttempts?: number;
  receiptAckTimeoutMs?: number;
  /** Holds every submit_sm_resp this long (real time), as a slow SMSC does; shows the client's window. Default 0. */
  submitResponseDelayMs?: number;
  logger?: CarrierLogger;
  now?: () => number;
}

export interface SmppSimulatorStats {
  connections: number;
  binds: number;
  bindFailures: number;
  submits: number;
  accepted: number;
  throttled: number;
  enquireLinks: number;
  receiptsSent: number;
  receiptsAcked: number;
  receiptsNacked: number;
  /** Most submit_sm one session had unanswered at once. */
  maxOutstanding: number;
}

export interface RecordedSubmission {
  messageId: string;
  destination: string;
  text: string;
  /** As sent: 0x00 GSM-7 (SMSC default), 0x08 UCS-2, ... */
  dataCoding: number;
}

interface PendingReceipt {
  origin: smpp.Session;
  r: SimReceipt;
  destination: string;
  sourceAddr: string;
  excerpt: string;
  attempt: number;
}

export class SmppSimulator {
  readonly engine: SimulatorEngine;
  /** While true every incoming PDU is ignored, as on a half-open TCP link. */
  silent = false;
  private readonly server: smpp.Server;
  private readonly bound = new Set<smpp.Session>();
  private readonly waiting: PendingReceipt[] = [];
  private readonly recorded: RecordedSubmission[] = [];
  private readonly opts: Required<Pick<SmppSimulatorOptions, 'systemId' | 'password' | 'receiptIdFormat' | 'recordSubmissions' | 'receiptAttempts' | 'receiptAckTimeoutMs' | 'submitResponseDelayMs'>>;
  private readonly logger: CarrierLogger;
  private readonly now: () => number;
  private host = '127.0.0.1';
  private listenPort = 0;
  private closed = false;
  private readonly counters: SmppSimulatorStats = {
    connections: 0,
    binds: 0,
    bindFailures: 0,
    submits: 0,
    accepted: 0,
    throttled: 0,
    enquireLinks: 0,
    receiptsSent: 0,
    receiptsAcked: 0,
    receiptsNacked: 0,
    maxOutstanding: 0,
  };
  private readonly outstanding = new Map<smpp.Session, number>();

  private constructor(opts: SmppSimulatorOptions) {
    this.opts = {
      systemId: opts.systemId ?? 'nexo',
      password: opts.password ?? 'secret',
      receiptIdFormat: opts.receiptIdFormat ?? 'same',
      recordSubmissions: opts.recordSubmissions ?? 0,
      receiptAttempts: opts.receiptAttempts ?? 4,
      receiptAckTimeoutMs: opts.receiptAckTimeoutMs ?? 5_000,
      submitResponseDelayMs: opts.submitResponseDelayMs ?? 0,
    };
    this.logger = opts.logger ?? silentLogger;
    this.now = opts.now ?? Date.now;
    this.engine = new SimulatorEngine(opts.config, this.now);
    this.server = smpp.createServer({}, (session) => this.onSession(session));
  }

  static async start(opts: SmppSimulatorOptions = {}, port = 0, host = '127.0.0.1'): Promise<SmppSimulator> {
    const sim = new SmppSimulator(opts);
    sim.host = host;
    await sim.listen(port);
    return sim;
  }

  get port(): number {
    return this.listenPort;
  }

  stats(): SmppSimulatorStats {
    return { ...this.counters };
  }

  submissions(): readonly RecordedSubmission[] {
    return this.recorded;
  }

  /** Cuts every connection at once, as an SMSC restart does. */
  dropSessions(): void {
    for (const s of [...this.server.sessions]) s.destroy();
    this.bound.clear();
  }

  /** Stops listening and drops everyone: clients see refused connections until resume(). */
  async pause(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropSessions();
    await closed;
  }

  async resume(): Promise<void> {
    await this.listen(this.listenPort);
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => {
        this.server.off('error', reject);
        this.listenPort = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private onSession(session: smpp.Session): void {
    this.counters.connections++;
    session.on('error', () => undefined);
    session.on('close', () => {
      this.bound.delete(session);
      this.outstanding.delete(session);
    });
    session.on('pdu', (pdu: smpp.PDU) => {
      if (this.silent || this.closed || pdu.isResponse()) return;
      switch (pdu.command) {
        case 'bind_transceiver':
          return this.onBind(session, pdu);
        case 'enquire_link':
          this.counters.enquireLinks++;
          return void session.send(pdu.response());
        case 'submit_sm':
          return this.onSubmit(session, pdu);
        case 'unbind':
          this.bound.delete(session);
          session.send(pdu.response());
          return session.close();
        default:
          session.send(pdu.response({ command_status: E.ESME_RINVCMDID }));
      }
    });
  }

  private onBind(session: smpp.Session, pdu: smpp.PDU): void {
    if (this.bound.has(session)) return void session.send(pdu.response({ command_status: E.ESME_RALYBND }));
    if (pdu.system_id !== this.opts.systemId || pdu.password !== this.opts.password) {
      this.counters.bindFailures++;
      return void session.send(pdu.response({ command_status: E.ESME_RBINDFAIL }));
    }
    this.counters.binds++;
    this.bound.add(session);
    session.send(pdu.response({ system_id: 'nexo-sim' }));
    for (const p of this.waiting.splice(0)) this.sendReceipt(p);
  }

  private onSubmit(session: smpp.Session, pdu: smpp.PDU): void {
    this.counters.submits++;
    const n = (this.outstanding.get(session) ?? 0) + 1;
    this.outstanding.set(session, n);
    this.counters.maxOutstanding = Math.max(this.counters.maxOutstanding, n);
    const answer = (resp: smpp.PDU): void => {
      const reply = (): void => {
        this.outstanding.set(session, (this.outstanding.get(session) ?? 1) - 1);
        session.send(resp);
      };
      if (this.opts.submitResponseDelayMs > 0) this.engine.after(this.opts.submitResponseDelayMs, reply);
      else reply();
    };
    this.decideSubmit(session, pdu, answer);
  }

  private decideSubmit(session: smpp.Session, pdu: smpp.PDU, answer: (resp: smpp.PDU) => void): void {
    if (!this.bound.has(session)) return answer(pdu.response({ command_status: E.ESME_RINVBNDSTS }));
    const destination = String(pdu.destination_addr ?? '');
    const phone = parseVnMobile(`+${destination}`);
    if (!phone) return answer(pdu.response({ command_status: E.ESME_RINVDSTADR }));
    switch (this.engine.admit(phone.carrier, 'sms')) {
      case 'throttled':
        this.counters.throttled++;
        return answer(pdu.response({ command_status: E.ESME_RTHROTTLED }));
      case 'error':
        return answer(pdu.response({ command_status: E.ESME_RSYSERR }));
      case 'no_route':
        return answer(pdu.response({ command_status: E.ESME_RINVDSTADR }));
      case 'ok':
        break;
    }
    const text = pduText(pdu);
    const sourceAddr = String(pdu.source_addr ?? '');
    const wantsReceipt = ((pdu.registered_delivery as number | undefined) ?? 0) & 0x03;
    const { messageId } = this.engine.accept(phone.carrier, 'sms', (r) => {
      if (wantsReceipt === 0 || (wantsReceipt === 2 && r.status === 'delivered')) return;
      this.sendReceipt({ origin: session, r, destination, sourceAddr, excerpt: text.slice(0, 20), attempt: 0 });
    });
    this.counters.accepted++;
    if (this.opts.recordSubmissions > 0) {
      this.recorded.push({ messageId, destination, text, dataCoding: Number(pdu.data_coding ?? 0) });
      if (this.recorded.length > this.opts.recordSubmissions) this.recorded.shift();
    }
    answer(pdu.response({ message_id: messageId }));
  }

  private sendReceipt(p: PendingReceipt): void {
    if (this.closed) return;
    // Receipts follow the bind, not the socket: any bound session of the account gets them, or they wait for one.
    const target = this.bound.has(p.origin) ? p.origin : this.bound.values().next().value;
    if (!target) {
      this.waiting.push(p);
      return;
    }
    const id = this.opts.receiptIdFormat === 'decimal' ? BigInt(`0x${p.r.messageId}`).toString(10) : p.r.messageId;
    const text = `${formatDlrText({ id, stat: p.r.stat, submitted: p.r.submittedAt, done: p.r.doneAt })} text:${p.excerpt}`;
    const state = STATUS_TO_MESSAGE_STATE[p.r.status];
    let settled = false;
    const retry = (): void => {
      if (settled) return;
      settled = true;
      if (p.attempt + 1 >= this.opts.receiptAttempts) {
        this.logger.warn({ messageId: p.r.messageId }, 'simulator gave up on a receipt');
        return;
      }
      this.engine.after(backoffDelay(p.attempt, 200, 5_000), () => this.sendReceipt({ ...p, attempt: p.attempt + 1 }));
    };
    this.counters.receiptsSent++;
    const sent = target.deliver_sm(
      {
        source_addr: p.destination,
        destination_addr: p.sourceAddr,
        esm_class: smpp.consts.ESM_CLASS.MC_DELIVERY_RECEIPT,
        short_message: text,
        receipted_message_id: id,
        ...(state !== undefined ? { message_state: state } : {}),
      },
      (resp) => {
        if (resp.command_status === E.ESME_ROK) {
          settled = true;
          this.counters.receiptsAcked++;
        } else {
          this.counters.receiptsNacked++;
          retry();
        }
      },
    );
    if (!sent) return retry();
    this.engine.after(this.opts.receiptAckTimeoutMs, retry);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.engine.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropSessions();
    await closed.catch(() => undefined);
  }
}
