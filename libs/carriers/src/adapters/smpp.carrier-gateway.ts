/**
 * CarrierGateway over SMPP 3.4 (one bind_transceiver session, smpp@0.5).
 *
 * Ordering and throttling: submits leave in the order submit() was called,
 * at most `window` unanswered at once and at most one per destination, so
 * messages to one phone can never overtake each other. ESME_RTHROTTLED (and
 * ESME_RMSGQFUL) put the message back in its original place, stop sending
 * for a backoff, and shrink the window to 1, growing it again by one per
 * success. Strict global order across phones needs `window: 1`: with more in
 * flight, the SMSC may accept a later message while refusing an earlier one.
 *
 * Nothing queued is lost: it waits for the bind (up to `queueTimeoutMs`) and
 * survives reconnects. A submit already written when the link drops fails
 * with `connection_lost` (retryable, ambiguous): it is not re-sent blindly.
 * A submit_sm_resp overdue by `responseTimeoutMs` fails its submit as an
 * ambiguous `timeout`; nothing more is sent on that link (the SMSC still holds
 * the submit, so the window and the one-per-phone rule must hold on the wire).
 * The other submits in flight get their own answers; the overdue one gets
 * another `responseTimeoutMs` to answer late (its message id is then kept, so
 * the receipt is still tied to the OTP). Once everything is answered the link
 * goes on; if an overdue answer never comes, the link is dropped and bound
 * again, with nothing outstanding. The socket runs with TCP_NODELAY: a burst leaves
 * at once instead of behind Nagle's wait for the first acknowledgement.
 */
import smpp from 'smpp';
import { maskPhone, smsSize } from '#domain';
import { backoffDelay } from '../backoff.js';
import {
  CarrierError,
  logThrottle,
  silentLogger,
  type CarrierGateway,
  type CarrierLogger,
  type SmsSubmit,
  type SubmitRequest,
  type SubmitResult,
} from '../carrier-gateway.port.js';
import { resolveSmppSettings, type SmppSettings, type SmppCarrierGatewayOptions, type SmppLinkState } from './smpp.options.js';
import { smppErrorName } from './smpp.pdu.js';
import { SentMessages, readDeliverSm } from './smpp.receipts.js';

const E = smpp.errors;
/**
 * Worth another try elsewhere: the SMSC's own trouble, and refusals of how this provider is set up
 * rather than of the message (a sender name or source address not registered with this SMSC,
 * service type, account), which another provider may well take. Any other error status is about
 * the message itself.
 */
const RETRYABLE = new Set([
  E.ESME_RSYSERR,
  E.ESME_RX_T_APPN,
  E.ESME_RSUBMITFAIL,
  E.ESME_RUNKNOWNERR,
  E.ESME_RINVBNDSTS,
  E.ESME_RINVSRCADR,
  E.ESME_RINVSRCTON,
  E.ESME_RINVSRCNPI,
  E.ESME_RINVSERTYP,
  E.ESME_RINVSYSID,
  E.ESME_RINVPASWD,
  E.ESME_RX_R_APPN,
]);
const SLOW_DOWN = new Set([E.ESME_RTHROTTLED, E.ESME_RMSGQFUL]);

interface Item {
  seq: number;
  req: SmsSubmit;
  dest: string;
  deadline: number;
  resolve(r: SubmitResult): void;
  reject(e: CarrierError): void;
  timer?: NodeJS.Timeout;
}

export class SmppCarrierGateway implements CarrierGateway {
  readonly provider: string;
  private readonly o: SmppSettings;
  private readonly logger: CarrierLogger;
  private session: smpp.Session | null = null;
  private bound = false;
  private closing = false;
  private epoch = 0;
  private seq = 0;
  private linkState: SmppLinkState = 'connecting';
  private readonly queue: Item[] = [];
  private readonly inflight = new Set<Item>();
  /**
   * Submits failed as overdue whose answer may still come on this link, each with the timer that
   * drops the link if it does not: nothing is sent while there are any.
   */
  private readonly overdue = new Map<Item, NodeJS.Timeout>();
  /** Called whenever a submit leaves `inflight` (answered, timed out, link dropped). */
  private readonly inflightWatchers = new Set<() => void>();
  private readonly busyDests = new Set<string>();
  private window: number;
  private throttleUntil = 0;
  private throttleStreak = 0;
  private reconnectAttempt = 0;
  private reconnects = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pumpTimer: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  /** Starts the reconnect backoff over once a bind has held for `reconnect.stableMs`. */
  private stableTimer: NodeJS.Timeout | undefined;
  /** The last bind's refusal (status name) until a bind succeeds: submits fail at once instead of waiting. */
  private refused: string | undefined;
  private enquireDeadline: NodeJS.Timeout | undefined;
  private readonly sent: SentMessages;
  /** Unknown status words are logged once a minute each: an SMSC may send one on every receipt. */
  private readonly unknownStatLogged = logThrottle();
  private readonly boundWaiters = new Set<{ bound(): void; closed(): void }>();
  private drained: (() => void) | undefined;
  private closed: Promise<void> | undefined;

  private constructor(opts: SmppCarrierGatewayOptions) {
    this.provider = opts.provider;
    this.o = resolveSmppSettings(opts);
    this.logger = opts.logger ?? silentLogger;
    this.window = this.o.window;
    this.sent = new SentMessages(this.o.trackMessages);
  }

  /** Starts connecting and returns at once; submits wait for the bind. */
  static start(opts: SmppCarrierGatewayOptions): SmppCarrierGateway {
    const gw = new SmppCarrierGateway(opts);
    gw.connect();
    return gw;
  }

  get state(): SmppLinkState {
    return this.linkState;
  }

  stats(): { state: SmppLinkState; queued: number; inflight: number; window: number; reconnects: number; tracked: number } {
    return {
      state: this.linkState,
      queued: this.queue.length,
      inflight: this.inflight.size,
      window: this.window,
      reconnects: this.reconnects,
      tracked: this.sent.size,
    };
  }

  /** Resolves once bound (at once if already); rejects after `timeoutMs` or on close(). */
  whenBound(timeoutMs = 10_000): Promise<void> {
    if (this.bound) return Promise.resolve();
    if (this.closing) return Promise.reject(new CarrierError(this.provider, 'closed', true));
    return new Promise((resolve, reject) => {
      const waiter = {
        bound: () => settle(resolve),
        closed: () => settle(() => reject(new CarrierError(this.provider, 'closed', true))),
      };
      const settle = (then: () => void): void => {
        clearTimeout(t);
        this.boundWaiters.delete(waiter);
        then();
      };
      const t = setTimeout(
        () => settle(() => reject(new CarrierError(this.provider, 'timeout', true, `not bound within ${timeoutMs} ms`))),
        timeoutMs,
      );
      this.boundWaiters.add(waiter);
    });
  }

  submit(req: SubmitRequest): Promise<SubmitResult> {
    if (this.closing) return Promise.reject(new CarrierError(this.provider, 'closed', true));
    if (this.refused !== undefined && !this.bound) return Promise.reject(this.bindRefusedError(this.refused));
    if (req.channel !== 'sms') {
      return Promise.reject(new CarrierError(this.provider, 'unsupported_channel', true, 'SMPP carries SMS only'));
    }
    if (this.queue.length >= this.o.maxQueue) {
      return Promise.reject(new CarrierError(this.provider, 'queue_full', true, `${this.o.maxQueue} submits already queued`));
    }
    return new Promise((resolve, reject) => {
      const item: Item = {
        seq: this.seq++,
        req,
        dest: req.phoneE164.replace(/^\+/, ''),
        deadline: this.o.now() + this.o.queueTimeoutMs,
        resolve,
        reject,
      };
      this.enqueue(item);
      this.pump();
    });
  }

  // ---- queue and window -------------------------------------------------

  /** Keeps the queue in submit order: a message put back after a throttle goes back to its place. */
  private enqueue(item: Item): void {
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.seq > item.seq) i--;
    this.queue.splice(i, 0, item);
    clearTimeout(item.timer);
    item.timer = setTimeout(() => this.expireQueued(item), Math.max(0, item.deadline - this.o.now()));
  }

  private expireQueued(item: Item): void {
    const i = this.queue.indexOf(item);
    if (i < 0) return;
    this.queue.splice(i, 1);
    item.reject(new CarrierError(this.provider, 'timeout', true, `not sent within ${this.o.queueTimeoutMs} ms`, 'not_sent'));
  }

  private pump(): void {
    if (!this.bound || this.closing || !this.session || this.overdue.size > 0) return;
    const wait = this.throttleUntil - this.o.now();
    if (wait > 0) {
      if (!this.pumpTimer) {
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, wait);
      }
      return;
    }
    for (let i = 0; i < this.queue.length && this.inflight.size < this.window; ) {
      const item = this.queue[i]!;
      if (this.busyDests.has(item.dest)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      if (!this.send(this.session, item)) {
        // The socket is going away; the item waits for the next bind.
        this.enqueue(item);
        return;
      }
    }
  }

  private send(s: smpp.Session, item: Item): boolean {
    const text = item.req.text;
    const size = smsSize(text);
    const message = size.used > size.limit ? { message_payload: text } : { short_message: text };
    // Explicit, because smpp@0.5's auto-detection labels GSM-7 bytes as IA5 (0x01), which garbles @ $ _ and friends.
    const dataCoding = size.encoding === 'gsm7' ? smpp.consts.ENCODING.SMSC_DEFAULT : smpp.consts.ENCODING.UCS2;
    const epoch = this.epoch;
    const written = s.submit_sm(
      {
        source_addr_ton: this.o.sourceAddrTon,
        source_addr_npi: this.o.sourceAddrNpi,
        source_addr: this.o.sourceAddr,
        dest_addr_ton: smpp.consts.TON.INTERNATIONAL,
        dest_addr_npi: smpp.consts.NPI.ISDN,
        destination_addr: item.dest,
        registered_delivery: smpp.consts.REGISTERED_DELIVERY.FINAL,
        data_coding: dataCoding,
        ...message,
      },
      (pdu) => this.onSubmitResp(item, epoch, pdu),
    );
    if (!written) return false;
    clearTimeout(item.timer);
    this.inflight.add(item);
    this.busyDests.add(item.dest);
    item.timer = setTimeout(() => this.onResponseTimeout(item), this.o.responseTimeoutMs);
    return true;
  }

  private release(item: Item): void {
    clearTimeout(item.timer);
    this.inflight.delete(item);
    this.busyDests.delete(item.dest);
    for (const watch of [...this.inflightWatchers]) watch();
    if (this.inflight.size === 0) this.drained?.();
  }

  /** Resolves once every submit in flight now has left the window: answered, timed out, or lost with the link. */
  private afterInflight(): Promise<void> {
    const pending = [...this.inflight];
    return new Promise((resolve) => {
      const watch = () => {
        if (pending.some((item) => this.inflight.has(item))) return;
        this.inflightWatchers.delete(watch);
        resolve();
      };
      this.inflightWatchers.add(watch);
      watch();
    });
  }

  private onSubmitResp(item: Item, epoch: number, pdu: smpp.PDU): void {
    if (epoch !== this.epoch) return;
    if (this.overdue.has(item)) return this.onLateResp(item, pdu);
    if (!this.inflight.has(item)) return;
    this.release(item);
    const status = pdu.command_status;
    const log = { provider: this.provider, otpId: item.req.otpId, attempt: item.req.attempt, phone: maskPhone(item.req.phoneE164) };
    if (status === E.ESME_ROK && pdu.command === 'submit_sm_resp') {
      const id = String(pdu.message_id ?? '').trim();
      if (!id) {
        // Accepted, so the SMSC may send it: ambiguous, the phone's window is kept (I8).
        item.reject(new CarrierError(this.provider, 'invalid_response', false, 'submit_sm_resp without message_id', undefined, undefined, true));
      } else {
        this.sent.remember(id, item.req.otpId, item.req.attempt);
        this.throttleStreak = 0;
        this.window = Math.min(this.o.window, this.window + 1);
        item.resolve({ providerMessageId: id });
      }
    } else if (SLOW_DOWN.has(status) && !this.closing) {
      const now = this.o.now();
      // One burst of throttled answers is one episode: only a throttle after the pause ended lengthens it.
      if (now >= this.throttleUntil) {
        const delay = backoffDelay(this.throttleStreak++, this.o.throttle?.baseMs ?? 250, this.o.throttle?.maxMs ?? 5_000);
        this.throttleUntil = now + delay;
        this.logger.warn({ provider: this.provider, status: smppErrorName(status), pauseMs: delay }, 'smpp throttled; slowing down');
      }
      this.window = 1;
      this.enqueue(item);
    } else {
      const name = smppErrorName(status);
      const retryable = RETRYABLE.has(status) || SLOW_DOWN.has(status);
      this.logger.warn({ ...log, status: name }, 'smpp submit refused');
      item.reject(new CarrierError(this.provider, retryable ? 'unavailable' : 'rejected', retryable, name, name));
    }
    this.pump();
  }

  /**
   * An overdue submit_sm_resp: the submit fails as an ambiguous timeout (the dispatcher keeps the
   * phone's window before failing over). Its slot is not reused on this link: the SMSC still holds
   * the submit unanswered, and sending more would break the window and the one-per-phone rule on
   * the wire. So nothing more is sent; the other submits in flight are left to their own answers
   * (dropping the link at once would fail every one of them as `connection_lost`, though the SMSC
   * took them, and each would fail over: a second SMS to each user). The overdue submit gets one
   * more `responseTimeoutMs` to answer late; without that answer the link is dropped, and a new
   * bind starts with nothing outstanding.
   */
  private onResponseTimeout(item: Item): void {
    if (!this.inflight.has(item)) return;
    this.release(item);
    this.busyDests.add(item.dest);
    const timer = setTimeout(() => {
      if (!this.overdue.has(item)) return;
      this.logger.warn({ provider: this.provider, otpId: item.req.otpId }, 'smpp submit_sm_resp never came; dropping the link');
      this.session?.destroy();
    }, this.o.responseTimeoutMs);
    this.overdue.set(item, timer);
    item.reject(new CarrierError(this.provider, 'timeout', true, `no submit_sm_resp within ${this.o.responseTimeoutMs} ms`, 'response_timeout'));
    this.logger.warn({ provider: this.provider, otpId: item.req.otpId }, 'smpp submit_sm_resp overdue; sending nothing more on this link until it is answered');
  }

  /**
   * The answer to a submit already failed as overdue. Its message id is kept, so the receipt is tied
   * to the OTP (and the dispatcher, seeing it on the stream, does not fail over). Once nothing is
   * outstanding the link goes on.
   */
  private onLateResp(item: Item, pdu: smpp.PDU): void {
    clearTimeout(this.overdue.get(item));
    this.overdue.delete(item);
    this.busyDests.delete(item.dest);
    const id = pdu.command_status === E.ESME_ROK ? String(pdu.message_id ?? '').trim() : '';
    if (id) this.sent.remember(id, item.req.otpId, item.req.attempt);
    this.logger.info(
      { provider: this.provider, otpId: item.req.otpId, status: smppErrorName(pdu.command_status), messageId: id || undefined },
      'smpp submit_sm_resp came late; its receipt will be tied to the OTP',
    );
    this.pump();
  }

  // ---- link -------------------------------------------------------------

  private setState(state: SmppLinkState, detail: { attempt?: number; reconnectInMs?: number } = {}): void {
    this.linkState = state;
    try {
      this.o.onStateChange?.(state, detail);
    } catch {
      // An observer's bug must not take the link down.
    }
  }

  private connect(): void {
    if (this.closing) return;
    this.setState('connecting', { attempt: this.reconnectAttempt });
    const epoch = ++this.epoch;
    const s = smpp.connect({ host: this.o.host, port: this.o.port });
    this.session = s;
    const bindTimer = setTimeout(() => {
      this.logger.warn({ provider: this.provider }, 'smpp bind timed out');
      s.destroy();
    }, this.o.bindTimeoutMs);
    s.on('connect', () => {
      // Without it Nagle holds every submit_sm after a burst's first until that one is acknowledged (~40 ms).
      s.socket.setNoDelay(true);
      s.bind_transceiver({ system_id: this.o.systemId, password: this.o.password, system_type: this.o.systemType ?? '' }, (pdu) => {
        clearTimeout(bindTimer);
        if (epoch !== this.epoch) return;
        if (pdu.command_status === E.ESME_ROK) return this.onBound(s);
        const status = smppErrorName(pdu.command_status);
        this.logger.error({ provider: this.provider, status }, 'smpp bind refused');
        // Credentials or bind settings the SMSC will not take: what waits for a bind would wait for
        // queueTimeoutMs for nothing. It fails now, as never sent, so the dispatcher fails over.
        this.refused = status;
        for (const item of this.queue.splice(0)) {
          clearTimeout(item.timer);
          item.reject(this.bindRefusedError(status));
        }
        s.destroy();
      });
    });
    // A parse error leaves smpp@0.5's reader stuck, so any error ends the session; 'close' follows and reconnects.
    s.on('error', (err: NodeJS.ErrnoException) => {
      this.logger.warn({ provider: this.provider, err: err.code ?? err.message }, 'smpp link error');
      s.destroy();
    });
    s.on('close', () => {
      clearTimeout(bindTimer);
      if (epoch === this.epoch) this.onClosed();
    });
    s.on('pdu', (pdu: smpp.PDU) => {
      if (epoch === this.epoch) this.onPdu(s, pdu);
    });
  }

  private bindRefusedError(status: string): CarrierError {
    return new CarrierError(this.provider, 'unavailable', true, `smpp bind refused (${status})`, `bind:${status}`);
  }

  private onBound(s: smpp.Session): void {
    this.bound = true;
    this.refused = undefined;
    this.stableTimer = setTimeout(() => (this.reconnectAttempt = 0), this.o.reconnect?.stableMs ?? 10_000);
    this.setState('bound');
    this.logger.info({ provider: this.provider }, 'smpp bound');
    this.keepAlive = setInterval(() => this.enquire(s), this.o.enquireLinkMs);
    for (const w of [...this.boundWaiters]) w.bound();
    this.pump();
  }

  private enquire(s: smpp.Session): void {
    if (this.enquireDeadline || !this.bound) return;
    // enquire_link is how a half-open TCP link (no RST, no FIN) is noticed at all.
    this.enquireDeadline = setTimeout(() => {
      this.logger.warn({ provider: this.provider }, 'smpp enquire_link unanswered; dropping the link');
      s.destroy();
    }, this.o.enquireLinkTimeoutMs);
    s.enquire_link({}, () => {
      clearTimeout(this.enquireDeadline);
      this.enquireDeadline = undefined;
    });
  }

  private onClosed(): void {
    this.session = null;
    this.bound = false;
    for (const [item, timer] of this.overdue) {
      clearTimeout(timer);
      this.busyDests.delete(item.dest);
    }
    this.overdue.clear();
    clearInterval(this.keepAlive);
    clearTimeout(this.stableTimer);
    clearTimeout(this.enquireDeadline);
    clearTimeout(this.pumpTimer);
    this.keepAlive = this.enquireDeadline = this.pumpTimer = undefined;
    for (const item of [...this.inflight]) {
      this.release(item);
      item.reject(new CarrierError(this.provider, 'connection_lost', true, 'link dropped before submit_sm_resp'));
    }
    if (this.closing) return this.setState('closed');
    const delay = backoffDelay(this.reconnectAttempt++, this.o.reconnect?.baseMs ?? 500, this.o.reconnect?.maxMs ?? 30_000);
    this.reconnects++;
    this.setState('disconnected', { attempt: this.reconnectAttempt, reconnectInMs: delay });
    this.logger.warn({ provider: this.provider, attempt: this.reconnectAttempt, delayMs: delay, queued: this.queue.length }, 'smpp link down; reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private onPdu(s: smpp.Session, pdu: smpp.PDU): void {
    if (pdu.isResponse()) return; // answered through the send callbacks
    switch (pdu.command) {
      // SMPP 3.4 lets an SMSC send a receipt as data_sm (esm_class 0x04, often TLVs only): read and acknowledged alike.
      case 'deliver_sm':
      case 'data_sm':
        return void this.onDeliver(s, pdu);
      // An alert_notification takes no response at all (SMPP 3.4 §4.12): answering it, even with a nack, breaks the protocol.
      case 'alert_notification':
        return;
      case 'enquire_link':
        return void s.send(pdu.response());
      case 'unbind':
        this.bound = false;
        s.send(pdu.response());
        return s.close();
      case 'unknown':
        return void s.send(pdu.response());
      default:
        return void s.send(new smpp.PDU('generic_nack', { sequence_number: pdu.sequence_number, command_status: E.ESME_RINVCMDID }));
    }
  }

  /**
   * A deliver_sm or data_sm: it is answered with its own response (deliver_sm_resp, or data_sm_resp
   * with an empty message_id, smpp@0.5's default). Receipts are acknowledged only after the sink took them; a failing sink
   * answers ESME_RX_T_APPN so the SMSC delivers the receipt again later.
   * Anything we can never use (MO messages, intermediate states, garbage) is
   * acknowledged, or the SMSC would redeliver it forever.
   */
  private async onDeliver(s: smpp.Session, pdu: smpp.PDU): Promise<void> {
    const receivedAt = this.o.now();
    let reading = readDeliverSm(this.provider, pdu, this.sent, receivedAt);
    // A receipt can overtake its own submit_sm_resp, and may quote the id in another spelling (decimal
    // for hex): until that answer is in, the id cannot be matched or written the way submit returned
    // it. Wait for the submits now in flight (bounded by responseTimeoutMs), then read it again.
    if (reading.kind === 'receipt' && reading.receipt.otpId === undefined && this.inflight.size > 0) {
      await this.afterInflight();
      reading = readDeliverSm(this.provider, pdu, this.sent, receivedAt);
    }
    if (reading.kind === 'ignore') {
      if (reading.reason === 'unreadable') this.logger.warn({ provider: this.provider }, 'smpp receipt unreadable; acknowledged and dropped');
      if (reading.reason === 'unknown_stat' && this.unknownStatLogged(reading.stat)) this.logger.warn({ provider: this.provider, stat: reading.stat }, 'smpp receipt with a status word we do not know; acknowledged and dropped');
      return void s.send(pdu.response());
    }
    try {
      await this.o.sink(reading.receipt);
      s.send(pdu.response());
    } catch (err) {
      this.logger.warn({ provider: this.provider, otpId: reading.receipt.otpId, err: String(err) }, 'receipt sink failed; asking the SMSC to redeliver');
      s.send(pdu.response({ command_status: E.ESME_RX_T_APPN }));
    }
  }

  close(): Promise<void> {
    // Every caller waits for the same shutdown, not just the first.
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    for (const w of [...this.boundWaiters]) w.closed();
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pumpTimer);
    clearTimeout(this.stableTimer);
    for (const item of this.queue.splice(0)) {
      clearTimeout(item.timer);
      item.reject(new CarrierError(this.provider, 'closed', true, 'gateway closed before sending', 'not_sent'));
    }
    if (this.inflight.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.o.closeGraceMs);
        this.drained = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const s = this.session;
    if (s) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => s.destroy(), 1_000);
        s.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        // unbind politely when bound; the SMSC then frees the bind slot at once instead of at its timeout.
        if (!this.bound || !s.unbind({}, () => s.close())) s.destroy();
      });
    }
    for (const item of [...this.inflight]) {
      this.release(item);
      item.reject(new CarrierError(this.provider, 'closed', true, 'gateway closed before submit_sm_resp'));
    }
    clearInterval(this.keepAlive);
    clearTimeout(this.enquireDeadline);
    this.setState('closed');
  }
}
