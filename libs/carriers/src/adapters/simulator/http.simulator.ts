/**
 * The simulator's HTTP face: an aggregator speaking http.protocol.ts, which
 * posts signed receipt callbacks to a configured URL. `injectFault` queues
 * scripted answers for the next submits, so tests can show retries exactly.
 */
import { deadlineSignal } from '../../deadline.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { trimOldest } from '#collections';
import { parseVnMobile } from '#domain';
import { silentLogger, type CarrierLogger } from '../../carrier-gateway.port.js';
import {
  IDEMPOTENCY_HEADER,
  MAX_BODY_BYTES,
  SIGNATURE_HEADER,
  SUBMIT_PATH,
  SubmitBodySchema,
  signBody,
  verifyReceiptSignature,
  type ReceiptBody,
} from '../http.protocol.js';
import { backoffDelay } from '../../backoff.js';
import { SimulatorEngine } from './simulator.engine.js';
import type { SimulatorConfig, SimulatorConfigInput } from './simulator.config.js';

export type HttpFault = { status: number; error?: string; retryAfterSec?: number } | { hangMs: number };

export interface HttpSimulatorOptions {
  secret: string;
  /** Where receipts are POSTed; none are sent until set. */
  callbackUrl?: string;
  config?: SimulatorConfigInput | SimulatorConfig;
  /** Tries per receipt callback (first included). Default 4. */
  callbackAttempts?: number;
  callbackTimeoutMs?: number;
  logger?: CarrierLogger;
  now?: () => number;
}

export interface HttpSimulatorStats {
  requests: number;
  accepted: number;
  idempotentReplays: number;
  throttled: number;
  refused: number;
  receiptsSent: number;
  receiptsFailed: number;
}

/** Idempotency keys remembered; older ones are forgotten first. */
const IDEMPOTENCY_MEMORY = 10_000;

export class HttpSimulator {
  readonly engine: SimulatorEngine;
  private readonly server: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly secret: string;
  private callbackUrl: string | undefined;
  private readonly callbackAttempts: number;
  private readonly callbackTimeoutMs: number;
  private readonly logger: CarrierLogger;
  private readonly now: () => number;
  private readonly faults: HttpFault[] = [];
  private readonly byKey = new Map<string, string>();
  private readonly stopping = new AbortController();
  private readonly counters: HttpSimulatorStats = {
    requests: 0,
    accepted: 0,
    idempotentReplays: 0,
    throttled: 0,
    refused: 0,
    receiptsSent: 0,
    receiptsFailed: 0,
  };

  private constructor(opts: HttpSimulatorOptions) {
    this.secret = opts.secret;
    this.callbackUrl = opts.callbackUrl;
    this.callbackAttempts = opts.callbackAttempts ?? 4;
    this.callbackTimeoutMs = opts.callbackTimeoutMs ?? 5_000;
    this.logger = opts.logger ?? silentLogger;
    this.now = opts.now ?? Date.now;
    this.engine = new SimulatorEngine(opts.config, this.now);
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  static async start(opts: HttpSimulatorOptions, port = 0, host = '127.0.0.1'): Promise<HttpSimulator> {
    const sim = new HttpSimulator(opts);
    await new Promise<void>((resolve, reject) => {
      sim.server.once('error', reject);
      sim.server.listen(port, host, () => resolve());
    });
    return sim;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  setCallbackUrl(url: string | undefined): void {
    this.callbackUrl = url;
  }

  injectFault(...faults: HttpFault[]): void {
    this.faults.push(...faults);
  }

  stats(): HttpSimulatorStats {
    return { ...this.counters };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: object, headers: Record<string, string> = {}): void => {
      if (res.destroyed || res.headersSent) return;
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== SUBMIT_PATH) return send(404, { error: 'not_found' });
    this.counters.requests++;
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch {
      return send(413, { error: 'too_large' });
    }
    const fault = this.faults.shift();
    if (fault && 'hangMs' in fault) {
      // A slow upstream that still does the work: the client has given up, the message goes out anyway.
      await new Promise((r) => this.engine.after(fault.hangMs, () => r(undefined)));
      if (this.stopping.signal.aborted) return;
    } else if (fault) {
      const headers: Record<string, string> = fault.retryAfterSec !== undefined ? { 'retry-after': String(fault.retryAfterSec) } : {};
      return send(fault.status, { error: fault.error ?? `injected_${fault.status}` }, headers);
    }
    if (!verifyReceiptSignature(this.secret, raw, header(req, SIGNATURE_HEADER), { nowMs: this.now() })) {
      this.counters.refused++;
      return send(401, { error: 'bad_signature' });
    }
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      json = undefined;
    }
    const body = SubmitBodySchema.safeParse(json);
    if (!body.success) {
      this.counters.refused++;
      return send(400, { error: 'invalid_request', message: body.error.issues[0]?.message ?? 'invalid body' });
    }
    const key = header(req, IDEMPOTENCY_HEADER);
    const known = key ? this.byKey.get(key) : undefined;
    if (known) {
      this.counters.idempotentReplays++;
      return send(202, { message_id: known, status: 'accepted' });
    }
    const phone = parseVnMobile(body.data.to);
    if (!phone) {
      this.counters.refused++;
      return send(422, { error: 'invalid_destination' });
    }
    switch (this.engine.admit(body.data.carrier, body.data.channel)) {
      case 'no_route':
        this.counters.refused++;
        return send(422, { error: 'no_route' });
      case 'throttled':
        this.counters.throttled++;
        return send(429, { error: 'throttled' }, { 'retry-after': '1' });
      case 'error':
        return send(503, { error: 'unavailable' });
      case 'ok':
        break;
    }
    const ref = body.data.reference;
    const { messageId } = this.engine.accept(body.data.carrier, body.data.channel, (r) =>
      this.postReceipt({ message_id: r.messageId, reference: ref, status: r.stat, done_at: r.doneAt.toISOString() }, 0),
    );
    if (key) this.remember(key, messageId);
    this.counters.accepted++;
    send(202, { message_id: messageId, status: 'accepted' });
  }

  private remember(key: string, messageId: string): void {
    this.byKey.set(key, messageId);
    trimOldest(this.byKey, IDEMPOTENCY_MEMORY);
  }

  private postReceipt(body: ReceiptBody, attempt: number): void {
    const url = this.callbackUrl;
    if (!url || this.stopping.signal.aborted) return;
    const raw = JSON.stringify(body);
    const deadline = deadlineSignal(this.callbackTimeoutMs, this.stopping.signal);
    const signal = deadline.signal;
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: this.agent,
        signal,
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(this.secret, raw, this.now()) },
      },
      (res) => {
        res.resume();
        const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
        if (ok) this.counters.receiptsSent++;
        else this.retryReceipt(body, attempt, `http_${res.statusCode}`);
      },
    );
    req.on('error', (err) => this.retryReceipt(body, attempt, (err as NodeJS.ErrnoException).code ?? err.name));
    req.on('close', () => deadline.clear());
    req.end(raw);
  }

  private retryReceipt(body: ReceiptBody, attempt: number, why: string): void {
    if (this.stopping.signal.aborted) return;
    if (attempt + 1 >= this.callbackAttempts) {
      this.counters.receiptsFailed++;
      this.logger.warn({ messageId: body.message_id, why }, 'simulator gave up on a receipt callback');
      return;
    }
    this.engine.after(backoffDelay(attempt, 200, 5_000), () => this.postReceipt(body, attempt + 1));
  }

  async close(): Promise<void> {
    this.stopping.abort(new Error('closed'));
    this.engine.close();
    this.agent.destroy();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        reject(new Error('too large'));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
