/**
 * Delivery receipts from HTTP aggregators: HMAC-verified over the raw body
 * with the provider's shared secret. A bad signature is 401 and records
 * nothing; a good one is on the bus (durable) before we answer 200, so the
 * upstream's retry covers a crash in between.
 */
import { Controller, Headers, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import type { RawBodyRequest } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { logThrottle, parseReceiptCallback, SIGNATURE_HEADER } from '#carriers';
import { DomainError } from '#domain';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

/** What a 401 here asks for (WWW-Authenticate): the body's HMAC in the signature header, not an API key. */
const RECEIPT_CHALLENGE = `HMAC-SHA256 header="${SIGNATURE_HEADER}"`;

@Controller('api/v1/carriers')
export class CarrierReceiptsController {
  private readonly secrets: ReadonlyMap<string, string>;
  /** Unknown status words are logged once a minute per provider and word: an aggregator may send one on every receipt. */
  private readonly unknownStatusLogged = logThrottle();

  constructor(@Inject(CORE) private readonly core: Core) {
    this.secrets = core.receiptSecrets();
  }

  @Post(':provider/receipts')
  @HttpCode(200)
  async receipt(@Param('provider') provider: string, @Req() request: RawBodyRequest<FastifyRequest>, @Headers(SIGNATURE_HEADER) signature: string | undefined) {
    const secret = this.secrets.get(provider);
    // An unknown provider answers as a bad signature does: the names of our upstreams are not told.
    if (!secret) throw new DomainError('unauthorized', 'bad or missing receipt signature', { challenge: RECEIPT_CHALLENGE });
    const result = parseReceiptCallback(provider, secret, request.rawBody ?? Buffer.alloc(0), signature);
    if (!result.ok) {
      throw result.reason === 'bad_signature'
        ? new DomainError('unauthorized', 'bad or missing receipt signature', { challenge: RECEIPT_CHALLENGE })
        : new DomainError('invalid_request', 'receipt body is not valid');
    }
    if (result.unknownStatus !== undefined && this.unknownStatusLogged(`${provider}\t${result.unknownStatus}`)) this.core.logger.warn({ provider, status: result.unknownStatus }, 'receipt with a status word we do not know; acknowledged and dropped');
    if (result.receipt) await this.core.receiveReceipt(result.receipt);
    return { ok: true };
  }
}
