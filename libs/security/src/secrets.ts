/** Tokens shown once and the one-way hashes we keep of them. */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { pooledRandomBytes } from './random-pool.js';

/** An API key: 32 random bytes, prefixed so leaked keys are recognisable by scanners. */
export function newApiKey(): { key: string; prefix: string; hash: string } {
  const key = `nxo_live_${randomBytes(32).toString('base64url')}`;
  return { key, prefix: key.slice(0, 13), hash: sha256Hex(key) };
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/**
 * An opaque id with a readable prefix: `otp_…`, `acc_…`, `key_…`. It starts
 * with the creation time in hex (so ids sort by time) and ends with 96 random
 * bits. Time order matters for storage: stream ids like `otp-<id>` are index
 * keys, and keys that grow land at the index's right edge instead of dirtying
 * a random page per insert.
 */
export function newId(prefix: string, nowMs: number = Date.now()): string {
  return `${prefix}_${nowMs.toString(16).padStart(12, '0')}${pooledRandomBytes(12).toString('base64url')}`;
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Keyed hash of a phone number: a stable key for limits, partitioning and
 * stats that cannot be reversed by hashing every Vietnamese number (a plain
 * SHA-256 of a 9-digit space could).
 */
export function phoneHash(pepper: Buffer, e164: string): string {
  return createHmac('sha256', pepper).update(e164).digest('hex');
}

/**
 * The key of the send's request hash (Idempotency-Key matching), derived from the pepper: that hash
 * is kept in the log, and a body holds a phone number and a code, which an unkeyed hash would give
 * back to anyone who reads the log (10^10 guesses at most, given the masked phone beside it).
 */
export function requestHashKey(pepper: Buffer): Buffer {
  return createHmac('sha256', pepper).update('nexo request hash v1').digest();
}
