/**
 * The simulator's in-process face: a CarrierGateway with no sockets, the
 * upstream of the embedded default and of tests that need no wire.
 */
import { parseVnMobile } from '#domain';
import {
  CarrierError,
  silentLogger,
  type CarrierGateway,
  type CarrierLogger,
  type Receipt,
  type ReceiptSink,
  type SubmitRequest,
  type SubmitResult,
} from '../../carrier-gateway.port.js';
import { formatDlrText } from '../../delivery-receipt.codec.js';
import { SimulatorEngine } from './simulator.engine.js';
import type { SimulatorConfig, SimulatorConfigInput } from './simulator.config.js';

const RECEIPT_RETRY_FIRST_MS = 100;
const RECEIPT_RETRY_MAX_MS = 30_000;
const RECEIPT_RETRY_FOR_MS = 10 * 60_000;

export interface SimulatorCarrierGatewayOptions {
  /** Default `simulator`. */
  provider?: string;
  config?: SimulatorConfigInput | SimulatorConfig;
  sink: ReceiptSink;
  logger?: CarrierLogger;
  now?: () => number;
}

export class SimulatorCarrierGateway implements CarrierGateway {
  readonly provider: string;
  private readonly engine: SimulatorEngine;
  private readonly sink: ReceiptSink;
  private readonly logger: CarrierLogger;
  private readonly now: () => number;
  private closed = false;
  /** Receipts the sink refused, waiting to be handed again. */
  private readonly retries = new Set<NodeJS.Timeout>();

  constructor(opts: SimulatorCarrierGatewayOptions) {
    this.provider = opts.provider ?? 'simulator';
    this.now = opts.now ?? Date.now;
    this.engine = new SimulatorEngine(opts.config, this.now);
    this.sink = opts.sink;
    this.logger = opts.logger ?? silentLogger;
  }

  async submit(req: SubmitRequest): Promise<SubmitResult> {
    if (this.closed) throw new CarrierError(this.provider, 'closed', true);
    const phone = parseVnMobile(req.phoneE164);
    if (!phone) throw new CarrierError(this.provider, 'invalid_request', false, 'not a Vietnamese mobile number');
    switch (this.engine.admit(req.carrier, req.channel)) {
      case 'no_route':
        throw new CarrierError(this.provider, 'no_route', false, `no ${req.channel} route for ${req.carrier}`);
      case 'throttled':
        throw new CarrierError(this.provider, 'throttled', true, 'submit rate exceeded');
      case 'error':
        throw new CarrierError(this.provider, 'unavailable', true, 'simulated upstream error');
      case 'ok':
        break;
    }
    const { otpId, attempt } = req;
    const { messageId } = this.engine.accept(req.carrier, req.channel, (r) => {
      const receipt = {
        provider: this.provider,
        providerMessageId: r.messageId,
        status: r.status,
        raw: formatDlrText({ id: r.messageId, stat: r.stat, submitted: r.submittedAt, done: r.doneAt }),
        at: r.doneAt.toISOString(),
        otpId,
        attempt,
      };
      this.deliver(receipt, 0);
    });
    return { providerMessageId: messageId };
  }

  /**
   * Hands a receipt to the sink; one it refuses (the service cannot record it for a while: its state
   * file refusing writes, say) is handed again later, as an SMSC resends a `deliver_sm` and an
   * aggregator a callback: after 100 ms, then twice as long each time up to 30 s, for 10 minutes.
   */
  private deliver(receipt: Receipt, tries: number, failingSince?: number): void {
    Promise.resolve()
      .then(() => this.sink(receipt))
      .catch((err: unknown) => {
        const since = failingSince ?? this.now();
        if (this.closed || this.now() - since >= RECEIPT_RETRY_FOR_MS) {
          this.logger.warn({ provider: this.provider, otpId: receipt.otpId, tries: tries + 1, err: String(err) }, 'simulator receipt sink failed; receipt dropped');
          return;
        }
        if (tries === 0) this.logger.warn({ provider: this.provider, otpId: receipt.otpId, err: String(err) }, 'simulator receipt sink failed; resending it later');
        const timer = setTimeout(
          () => {
            this.retries.delete(timer);
            this.deliver(receipt, tries + 1, since);
          },
          Math.min(RECEIPT_RETRY_MAX_MS, RECEIPT_RETRY_FIRST_MS * 2 ** Math.min(tries, 20)),
        );
        this.retries.add(timer);
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
    this.engine.close();
  }
}
