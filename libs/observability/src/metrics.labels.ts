/**
 * Closed label sets for the metrics. Every label value a metric can carry is
 * either in a fixed list (carriers, channels, refund reasons…) or was allowed
 * once at start from configuration (providers, chains, HTTP route templates);
 * anything else is recorded as `other`. That keeps the series count bounded
 * whatever a caller passes, and it is what makes I9 hold for metrics: a phone
 * number, an account id or a key can never become a label value, because no
 * set contains one and no request path can add one.
 */
import { CARRIERS, CHANNELS, DELIVERY_PROOFS, RECEIPT_STATUSES, REFUND_REASONS } from '#domain';

export const OTHER = 'other';

export type LabelValue = string | number | null | undefined;

interface LabelSetOptions {
  /** Applied before lookup, so `Viettel` and `viettel` are one series. */
  normalize?: (raw: string) => string;
  /** Values `allow` may add at start; absent means the set is fixed. */
  pattern?: RegExp;
  /** Hard cap on the set's size, `other` included, so a misconfiguration cannot explode cardinality. */
  capacity?: number;
}

export class LabelSet {
  readonly #values: Set<string>;
  readonly #options: LabelSetOptions;

  constructor(
    readonly name: string,
    values: Iterable<string>,
    options: LabelSetOptions = {},
  ) {
    this.#options = options;
    this.#values = new Set();
    for (const v of values) this.#add(v);
  }

  /** The value to record: the normalized input if the set holds it, else `other`. */
  clamp(raw: LabelValue): string {
    if (raw === null || raw === undefined) return OTHER;
    const value = this.#normalize(String(raw));
    return this.#values.has(value) ? value : OTHER;
  }

  has(raw: LabelValue): boolean {
    return raw !== null && raw !== undefined && this.#values.has(this.#normalize(String(raw)));
  }

  /** Every value a series may carry, `other` included. */
  values(): readonly string[] {
    return [...this.#values, OTHER];
  }

  get extensible(): boolean {
    return this.#options.pattern !== undefined;
  }

  /**
   * Adds values from configuration (the routing table's providers, the
   * configured chains, the routes Fastify registered). Meant for start-up
   * only: it throws on a fixed set, on a value outside the set's pattern and
   * past the set's capacity, so a mistake stops the process instead of
   * silently widening the label space.
   */
  allow(...raws: string[]): this {
    if (!this.extensible) throw new Error(`metrics label "${this.name}" is a fixed set`);
    for (const raw of raws) {
      const value = this.#normalize(raw);
      if (!this.#options.pattern!.test(value)) throw new Error(`metrics label "${this.name}": "${raw}" is not an allowed shape`);
      this.#add(value);
    }
    return this;
  }

  #add(value: string): void {
    if (value === OTHER || this.#values.has(value)) return;
    const capacity = this.#options.capacity ?? Number.POSITIVE_INFINITY;
    if (this.#values.size + 1 >= capacity) throw new Error(`metrics label "${this.name}" is full (${capacity} values)`);
    this.#values.add(value);
  }

  #normalize(raw: string): string {
    const trimmed = raw.trim();
    return this.#options.normalize ? this.#options.normalize(trimmed) : trimmed;
  }
}

const lower = (s: string) => s.toLowerCase();

/** Kept equal to `CarrierErrorCode` in #carriers; metrics.spec.ts fails to compile if they drift. */
export const CARRIER_ERROR_CODES = [
  'timeout',
  'connection_lost',
  'network',
  'unavailable',
  'throttled',
  'queue_full',
  'rejected',
  'unauthorized',
  'invalid_request',
  'no_route',
  'unsupported_channel',
  'invalid_response',
  'closed',
] as const;

/** The topics of the distributed mode; infra/kafka/topics.sh creates exactly these. */
export const BUS_TOPICS = ['nexo.otp.dispatch', 'nexo.otp.receipts', 'nexo.webhooks', 'nexo.chain.transfers', 'nexo.settlement'] as const;

export const SUBMIT_OUTCOMES = ['ok', 'error'] as const;

/**
 * `success` is any 2xx; any other answer is `http_5xx` when ≥ 500, else `http_4xx` (3xx included: the
 * sender does not follow redirects); `refused`: the endpoint is not a public address, so no connection
 * was made (`NEXO_WEBHOOK_PRIVATE_ADDRESSES`).
 */
export const WEBHOOK_OUTCOMES = ['success', 'http_4xx', 'http_5xx', 'timeout', 'network', 'refused'] as const;

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** The statuses this API answers with (API.md's error table plus the usual successes and proxies' 5xx). */
export const HTTP_STATUSES = [200, 201, 204, 301, 302, 304, 400, 401, 402, 403, 404, 405, 406, 408, 409, 413, 415, 422, 429, 431, 500, 502, 503, 504].map(String);

/** Route templates from API.md and the README's endpoints beyond it; Fastify's registered routes can be added with `allow` at start. */
export const DEFAULT_ROUTES = [
  '/api/v1/signup',
  '/api/v1/keys',
  '/api/v1/keys/:key_id',
  '/api/v1/balance',
  '/api/v1/send-otp',
  '/api/v1/otp',
  '/api/v1/otp/:id',
  '/api/v1/otp/:id/feedback',
  '/api/v1/webhook',
  '/api/v1/template',
  '/api/v1/deposit-address',
  '/api/v1/deposits',
  '/api/v1/stats',
  '/api/v1/stats/public',
  '/api/v1/ledger',
  '/api/v1/carriers/:provider/receipts',
  '/metrics',
  '/health/live',
  '/health/ready',
  '/docs',
  '/openapi.json',
  '/dashboard',
  '/dashboard/qr.svg',
  '/dashboard/:asset',
] as const;

export const DEFAULT_PROJECTIONS = ['money', 'otps', 'directory'] as const;
export const DEFAULT_CONSUMER_GROUPS = ['nexo-dispatcher', 'nexo-receipts', 'nexo-settlement', 'nexo-webhooks', 'nexo-deposits'] as const;
export const DEFAULT_CHAINS = ['ethereum', 'bsc', 'polygon', 'arbitrum', 'optimism', 'base', 'avalanche'] as const;
export const DEFAULT_PROVIDERS = ['simulator'] as const;
export const TOKENS = ['usdt', 'usdc'] as const;
/** The embedded default's service threads (their names in `top -H` and the benches' CPU lines), each started again when it dies. */
export const SERVICE_THREADS = ['nexo-log-writer', 'nexo-projector', 'nexo-webhooks'] as const;
/** How the command path loaded a stream's state: from its snapshot, with none, or past one that did not serve. */
export const STATE_LOAD_SNAPSHOT = ['used', 'none', 'stale'] as const;

/** The shape of provider names in the routing table (ProviderNameSchema in #carriers). */
const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const CHAIN_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const GROUP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** A route template, never a concrete path: parameters are `:name`, so ids cannot reach the label. */
const ROUTE_TEMPLATE = /^\/(?:[A-Za-z0-9_.*-]+|:[A-Za-z_][A-Za-z0-9_]*)?(?:\/(?:[A-Za-z0-9_.*-]+|:[A-Za-z_][A-Za-z0-9_]*))*\/?$/;

export interface LabelSetConfig {
  providers?: readonly string[];
  chains?: readonly string[];
  routes?: readonly string[];
  projections?: readonly string[];
  consumerGroups?: readonly string[];
}

export type MetricLabels = ReturnType<typeof createLabelSets>;

export function createLabelSets(config: LabelSetConfig = {}) {
  return {
    carrier: new LabelSet('carrier', CARRIERS, { normalize: lower }),
    channel: new LabelSet('channel', CHANNELS, { normalize: lower }),
    via: new LabelSet('via', DELIVERY_PROOFS),
    reason: new LabelSet('reason', REFUND_REASONS),
    receiptStatus: new LabelSet('status', RECEIPT_STATUSES),
    provider: new LabelSet('provider', DEFAULT_PROVIDERS, { normalize: lower, pattern: PROVIDER_NAME, capacity: 32 }).allow(
      ...(config.providers ?? []),
    ),
    submitOutcome: new LabelSet('outcome', SUBMIT_OUTCOMES),
    carrierErrorCode: new LabelSet('code', CARRIER_ERROR_CODES),
    method: new LabelSet('method', HTTP_METHODS, { normalize: (s) => s.toUpperCase() }),
    route: new LabelSet('route', DEFAULT_ROUTES, { pattern: ROUTE_TEMPLATE, capacity: 128 }).allow(...(config.routes ?? [])),
    httpStatus: new LabelSet('status', HTTP_STATUSES),
    projection: new LabelSet('projection', DEFAULT_PROJECTIONS, { normalize: lower, pattern: PROVIDER_NAME, capacity: 32 }).allow(
      ...(config.projections ?? []),
    ),
    topic: new LabelSet('topic', BUS_TOPICS),
    group: new LabelSet('group', DEFAULT_CONSUMER_GROUPS, { pattern: GROUP_NAME, capacity: 32 }).allow(...(config.consumerGroups ?? [])),
    webhookOutcome: new LabelSet('outcome', WEBHOOK_OUTCOMES),
    chain: new LabelSet('chain', DEFAULT_CHAINS, { normalize: lower, pattern: CHAIN_NAME, capacity: 16 }).allow(...(config.chains ?? [])),
    token: new LabelSet('token', TOKENS, { normalize: lower }),
    thread: new LabelSet('thread', SERVICE_THREADS),
    snapshot: new LabelSet('snapshot', STATE_LOAD_SNAPSHOT),
  };
}
