/**
 * Monthly delivery stats (written by the otps projection), in the shape of
 * GET /api/v1/stats so the API only adds `ok`.
 *
 * - `month` is the month (UTC) of the OTP's request; an OTP requested on the
 *   31st and delivered on the 1st counts in the month it was requested.
 * - `delivery_rate` is delivered / (delivered + refunded): the share of
 *   settled OTPs that reached the user. OTPs still in flight are left out, so
 *   a month in progress is not dragged down by sends that have not settled.
 *   null until something has settled.
 * - `p50_delivery_seconds` / `p95_delivery_seconds`: request-to-delivery time
 *   of delivered OTPs, nearest-rank, from log-spaced histograms: within 2.5 %
 *   of the exact figure (see latency-histogram.ts). null with no deliveries.
 */
import { type Db, memoPerDb } from '../projection.js';
import { percentileSeconds } from './latency-histogram.js';
import { ALL_ACCOUNTS } from './otps.projection.js';

export const DELIVERY_RATE_TARGET = 0.9;

export interface StatsFigures {
  sent: number;
  delivered: number;
  refunded: number;
  in_flight: number;
  delivery_rate: number | null;
  target: number;
  p50_delivery_seconds: number | null;
  p95_delivery_seconds: number | null;
}

export interface MonthlyStats extends StatsFigures {
  month: string;
  by_carrier: Record<string, StatsFigures>;
  by_channel: Record<string, StatsFigures>;
}

const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

interface Counts {
  sent: number;
  delivered: number;
  refunded: number;
}

const statements = memoPerDb((db) => ({
  counts: db.prepare<[string, string], Counts & { carrier: string; channel: string }>(
    'SELECT carrier, channel, sent, delivered, refunded FROM delivery_counts WHERE month = ? AND account_id = ?',
  ),
  latency: db.prepare<[string, string], { carrier: string; channel: string; bucket: number; n: number }>(
    'SELECT carrier, channel, bucket, n FROM delivery_latency WHERE month = ? AND account_id = ?',
  ),
}));

/** Sums of the month's cells under one key (overall, a carrier, a channel). */
class Scope {
  readonly counts: Counts = { sent: 0, delivered: 0, refunded: 0 };
  readonly histogram = new Map<number, number>();
}

function figures(scope: Scope | undefined): StatsFigures {
  const sent = scope?.counts.sent ?? 0;
  const delivered = scope?.counts.delivered ?? 0;
  const refunded = scope?.counts.refunded ?? 0;
  const histogram = scope?.histogram ?? [];
  const settled = delivered + refunded;
  return {
    sent,
    delivered,
    refunded,
    in_flight: Math.max(0, sent - settled),
    delivery_rate: settled === 0 ? null : delivered / settled,
    target: DELIVERY_RATE_TARGET,
    p50_delivery_seconds: percentileSeconds(histogram, 0.5),
    p95_delivery_seconds: percentileSeconds(histogram, 0.95),
  };
}

/** One month's stats for an account, or over all traffic when no account is given. */
export function monthlyStats(db: Db, month: string, options: { accountId?: string } = {}): MonthlyStats {
  if (!MONTH.test(month)) throw new RangeError(`not a month (YYYY-MM): ${JSON.stringify(month)}`);
  const account = options.accountId ?? ALL_ACCOUNTS;
  const s = statements(db);
  const scopes = new Map<string, Scope>();
  const scope = (key: string) => {
    let sc = scopes.get(key);
    if (sc === undefined) scopes.set(key, (sc = new Scope()));
    return sc;
  };
  for (const r of s.counts.all(month, account)) {
    for (const key of ['all', `carrier:${r.carrier}`, `channel:${r.channel}`]) {
      const c = scope(key).counts;
      c.sent += r.sent;
      c.delivered += r.delivered;
      c.refunded += r.refunded;
    }
  }
  for (const r of s.latency.all(month, account)) {
    for (const key of ['all', `carrier:${r.carrier}`, `channel:${r.channel}`]) {
      const h = scope(key).histogram;
      h.set(r.bucket, (h.get(r.bucket) ?? 0) + r.n);
    }
  }
  const by = (dim: string): Record<string, StatsFigures> => {
    const out: Record<string, StatsFigures> = {};
    for (const key of [...scopes.keys()].sort()) if (key.startsWith(`${dim}:`)) out[key.slice(dim.length + 1)] = figures(scopes.get(key));
    return out;
  };
  return {
    month,
    ...figures(scopes.get('all')),
    by_carrier: by('carrier'),
    by_channel: by('channel'),
  };
}
