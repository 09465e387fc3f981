/** Tokens shown once and the one-way hashes we keep of them. */
import { createHash, createHmac, randomBytes } from 'node:crypto';

/** An API key: 32 random bytes, prefixed so leaked keys are recognisable by scanners. */
export function newApiKey(): { key: string; prefix: string; hash: string } {
  const key = `nxo_live_${randomBytes(32).toString('base64url')}`;
  return { key, prefix: key.slice(0, 13), hash: sha256Hex(key) };
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** A random opaque id with a readable prefix: `otp_…`, `acc_…`, `key_…` (96 bits). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`;
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
