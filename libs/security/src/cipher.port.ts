/**
 * The Cipher port: seals secrets at rest (OTP codes, phone numbers, webhook
 * secrets) into the event log. A sealed value names its key id, so keys can
 * rotate: new values use the current key, old ones still open with theirs.
 */
export interface Cipher {
  seal(plain: string): string;
  /** Throws when the value was not sealed by a known key or was tampered with. */
  open(sealed: string): string;
}

export const CIPHER = Symbol('Cipher');
