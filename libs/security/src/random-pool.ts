/**
 * Random bytes drawn from the CSPRNG in 4 KiB refills instead of one call per
 * value: ids and IVs are small and made on every request, and the call's own
 * overhead dwarfed the bytes. Every byte is handed out once; callers get a copy.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

export function pooledRandomBytes(size: number): Buffer {
  if (size > POOL_BYTES) return randomFillSync(Buffer.allocUnsafe(size));
  if (offset + size > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.allocUnsafe(size);
  pool.copy(out, 0, offset, offset + size);
  // The bytes handed out are wiped from the pool.
  pool.fill(0, offset, offset + size);
  offset += size;
  return out;
}
