/**
 * AES-256-GCM with a random 96-bit IV per value. Sealed form:
 * `<keyId>:<base64url(iv | tag | ciphertext)>`.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { pooledRandomBytes } from '../random-pool.js';
import type { Cipher } from '../cipher.port.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;

export class AesGcmCipher implements Cipher {
  private readonly keys: ReadonlyMap<string, Buffer>;

  /** `keys`: key id → 32-byte key; `currentKeyId` seals, all of them open. */
  constructor(
    keys: Record<string, Buffer>,
    private readonly currentKeyId: string,
  ) {
    for (const [id, key] of Object.entries(keys)) {
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new Error(`cipher key id must be 1-32 url-safe characters: ${id}`);
      if (key.length !== 32) throw new Error(`cipher key ${id} must be 32 bytes, got ${key.length}`);
    }
    if (!(currentKeyId in keys)) throw new Error(`unknown current cipher key id: ${currentKeyId}`);
    this.keys = new Map(Object.entries(keys));
  }

  seal(plain: string): string {
    const iv = pooledRandomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKeyId)!, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${this.currentKeyId}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  open(sealed: string): string {
    const sep = sealed.indexOf(':');
    const key = sep > 0 ? this.keys.get(sealed.slice(0, sep)) : undefined;
    if (!key) throw new Error('sealed value names no known key');
    const raw = Buffer.from(sealed.slice(sep + 1), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}
