/** Shared zod building blocks for event and edge schemas. */
import { z } from 'zod';
import { CARRIERS, CHANNELS } from './phone.js';

export const IsoTime = z.iso.datetime({ offset: false });
/** Integer micro-USD as a digit string (never a float). */
export const MicrosDigits = z.string().regex(/^-?\d{1,30}$/);
export const NonNegMicrosDigits = z.string().regex(/^\d{1,30}$/);
/** A secret sealed by the Cipher port: `<keyId>:<base64url(iv | tag | ciphertext)>`. */
export const Sealed = z.string().regex(/^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]+$/);
export const Id = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);
export const CarrierSchema = z.enum(CARRIERS);
export const ChannelSchema = z.enum(CHANNELS);
export const Hex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/);
export const Address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
