/**
 * Bearer API keys: the key is hashed and looked up in the api-keys read model,
 * so authentication never reads a stream. A key issued a moment ago may not be
 * projected yet: on a miss the guard waits for the projector to catch up once.
 * Found keys stay cached for a second, by the presented key itself (a send
 * per request would otherwise cost a SHA-256 and an index lookup; the cache
 * holds nothing the request buffers did not); a key revoked through this
 * process fails at once (`revokedKeys`), one revoked through another instance
 * within that second plus its projection lag.
 *
 * Every authenticated request then takes one token of its key's rate
 * (NEXO_KEY_RATE_PER_SECOND, NEXO_KEY_BURST), here and nowhere else: each
 * route that appends to the account stream or reads the read models is
 * limited alike, and a send takes one token, as it did in its handler.
 */
import { type CanActivate, createParamDecorator, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { DomainError } from '#domain';
import { sha256Hex } from '#security';
import { rateLimited } from './rate-limiter.js';
import { KEY_CACHE_MS } from './revoked-keys.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

export interface AuthContext {
  accountId: string;
  keyId: string;
}

type AuthedRequest = FastifyRequest & { auth?: AuthContext };

// The scheme name is case-insensitive, and one or more spaces follow it (RFC 9110 §11.1, §11.4).
const BEARER = /^Bearer +(\S+)$/i;
/** What a key can look like; a token of another shape (truncated, mistyped) is no key of ours. */
const KEY_SHAPE = /^[A-Za-z0-9_-]{16,200}$/;
const CACHE_MAX = 10_000;

type KeyView = NonNullable<ReturnType<Core['reads']['apiKey']>>;

@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly cache = new Map<string, { key: KeyView; until: number }>();

  constructor(@Inject(CORE) private readonly core: Core) {}

  private lookup(presented: string): KeyView | undefined {
    const now = performance.now();
    const hit = this.cache.get(presented);
    if (hit !== undefined && hit.until > now) return hit.key;
    const key = this.core.reads.apiKey(sha256Hex(presented));
    if (key === undefined || key.revoked) {
      this.cache.delete(presented);
      return key;
    }
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(presented, { key, until: now + KEY_CACHE_MS });
    return key;
  }

  /**
   * Synchronous when the key is known (every request but the first ones of a new key): Nest awaits
   * nothing then, where an async guard costs each request a promise and two microtask turns.
   */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const request = context.switchToHttp().getRequest<AuthedRequest>();
    const header = request.headers.authorization;
    const m = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!m) throw new DomainError('unauthorized', 'missing or malformed Authorization: Bearer <api key>');
    // A well-formed header with a token that cannot be a key: the same answer as an unknown key.
    if (!KEY_SHAPE.test(m[1])) throw new DomainError('unauthorized', 'unknown or revoked API key');
    const presented = m[1];
    const key = this.lookup(presented);
    if (key) return this.admit(request, key);
    return this.core.caughtUp().then(() => this.admit(request, this.lookup(presented)));
  }

  private admit(request: AuthedRequest, key: KeyView | undefined): true {
    if (!key || key.revoked || this.core.revokedKeys.has(key.keyId)) throw new DomainError('unauthorized', 'unknown or revoked API key');
    const wait = this.core.keyBuckets.take(key.keyId);
    if (wait > 0) throw rateLimited(wait, 'per-key request rate exceeded');
    request.auth = { accountId: key.accountId, keyId: key.keyId };
    return true;
  }
}

export const Auth = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthContext => {
  const auth = ctx.switchToHttp().getRequest<AuthedRequest>().auth;
  if (!auth) throw new Error('Auth used on a route without ApiKeyGuard');
  return auth;
});
