/**
 * A path we serve, asked with a method it does not take (`GET /api/v1/send-otp`,
 * `DELETE /api/v1/balance`): 405 with an `Allow` header (RFC 9110 §15.5.6)
 * rather than the router's 404, so a client learns the path is right and the
 * method wrong. The error code stays one of API.md's table (see api-error.ts).
 */
import type { FastifyRequest, HTTPMethods } from 'fastify';

export class MethodNotAllowed extends Error {
  constructor(
    readonly method: string,
    /** The methods the path takes, HEAD included where GET is (Fastify serves HEAD for every GET route). */
    readonly allow: readonly string[],
  ) {
    super(`${method} is not allowed on this path; it takes ${allow.join(', ')}`);
    this.name = 'MethodNotAllowed';
  }
}

/**
 * For a request the router found no route for: the methods its path is
 * served with, from the router itself, so the answer can never disagree with
 * the route table (or the OpenAPI document, which a test holds to that table).
 * Undefined when no method serves the path: that is a plain 404.
 */
export function methodNotAllowed(request: FastifyRequest): MethodNotAllowed | undefined {
  if (!request.is404) return undefined;
  const { server } = request;
  const allow = server.supportedMethods
    .filter((method) => method !== request.method && server.findRoute({ method: method as HTTPMethods, url: request.url }))
    .sort();
  return allow.length > 0 ? new MethodNotAllowed(request.method, allow) : undefined;
}
