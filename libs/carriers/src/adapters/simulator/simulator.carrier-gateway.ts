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
  type ReceiptSink,
  type SubmitRequest,
  type SubmitResult,
} from '../../carrier-gateway.port.js';
import { formatDlrText } from '../../delivery-receipt.codec.js';
import { SimulatorEngine } from './simulator.engine.js';
import type { SimulatorConfig, SimulatorConfigInput } from './simulator.config.js';

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
      Promise.resolve()
        .then(() => this.sink(receipt))
        .catch((err: unknown) =>
          this.logger.warn({ provider: this.provider, otpId, err: String(err) }, 'simulator receipt sink failed; receipt dropped'),
        );
    });
    return { providerMessageId: messageId };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.engine.close();
  }
}
