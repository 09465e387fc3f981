/**
 * Wiring: the core (plain objects) handed to a thin Nest app on Fastify.
 * Nest's own CommandBus and QueryBus carry controller calls to handlers; the
 * event log, not Nest's in-process EventBus, is what makes anything durable.
 */
import { type DynamicModule, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CqrsModule } from '@nestjs/cqrs';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Logger, PinoNestLogger } from '#observability';
import type { AppConfig } from './config.js';
import { type Core, createCore } from './core/core.js';
import { CORE } from './core/tokens.js';
import { ApiErrorFilter, sendError } from './http/api-error.filter.js';
import { ApiKeyGuard } from './http/auth.guard.js';
import { AccountsController } from './accounts/accounts.controller.js';
import { ConfigureWebhookHandler, IssueKeyHandler, RemoveWebhookHandler, RevokeKeyHandler, SetMessageTemplateHandler, SignupHandler } from './accounts/accounts.handlers.js';
import { OtpController } from './otp/otp.controller.js';
import { SendOtpHandler } from './otp/send-otp.handler.js';
import { GetOtpHandler } from './otp/otp.queries.js';
import { RecordFeedbackHandler } from './otp/feedback.handler.js';
import { ReportsController } from './reports/reports.controller.js';
import { HealthController } from './health/health.controller.js';
import { DocsController } from './docs/docs.controller.js';
import { CarrierReceiptsController } from './carriers/receipts.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { DepositsController } from './deposits/deposits.controller.js';
import { AssignDepositAddressHandler } from './deposits/deposits.handlers.js';
import { DashboardController } from './dashboard/dashboard.controller.js';

export const BODY_LIMIT_BYTES = 16 * 1024;

@Module({})
export class ApiModule {
  static register(core: Core): DynamicModule {
    return {
      module: ApiModule,
      imports: [CqrsModule.forRoot()],
      controllers: [AccountsController, OtpController, ReportsController, HealthController, DocsController, CarrierReceiptsController, MetricsController, DashboardController, DepositsController],
      providers: [
        { provide: CORE, useValue: core },
        ApiKeyGuard,
        SignupHandler,
        IssueKeyHandler,
        RevokeKeyHandler,
        ConfigureWebhookHandler,
        RemoveWebhookHandler,
        SetMessageTemplateHandler,
        SendOtpHandler,
        GetOtpHandler,
        RecordFeedbackHandler,
        AssignDepositAddressHandler,
      ],
    };
  }
}

export interface RunningApp {
  app: NestFastifyApplication;
  core: Core;
  /** Stops accepting, lets in-flight requests finish, then flushes and closes the store. */
  close(): Promise<void>;
}

export async function createApp(config: AppConfig, logger: Logger): Promise<RunningApp> {
  const core = await createCore(config, logger);
  const adapter = new FastifyAdapter({
    bodyLimit: BODY_LIMIT_BYTES,
    // The socket's peer and the next n-1 hops are our proxies; the address before them is the client's.
    trustProxy: config.trustProxy > 0 ? (_address: string, hop: number) => hop < config.trustProxy : false,
    logger: false,
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w-]{1,64}$/.test(given) ? given : randomUUID();
    },
    // Ids longer than Fastify's default limit (100) reach their route, which answers not_found like any unknown id.
    // A trailing slash (`/api/v1/balance/`) reaches the same route as the path without it.
    routerOptions: { maxParamLength: 1024, ignoreTrailingSlash: true },
    // Requests that arrive while the server drains answer in the API's shape (the onRequest hook below), not Fastify's.
    return503OnClosing: false,
    // What Node's HTTP parser refuses before any route runs (headers over its limit, garbage, a slow
    // request) answers in the API's error shape too, as Fastify's own handler would with its shape.
    clientErrorHandler: clientErrorInApiShape,
    // What the router refuses itself (a malformed percent-encoding, a longer path parameter) answers in the API's error shape too.
    frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) => {
      // These answers skip Fastify's hooks: the headers the onSend hook gives every other answer.
      void reply.headers({ 'x-request-id': request.id, 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' });
      sendError(reply, request, error, logger);
      // The metrics' onResponse hook does not run either: count them here.
      core.metrics.httpRequestSeconds.observe({ method: request.method, route: 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(ApiModule.register(core), adapter, {
    logger: new PinoNestLogger(logger),
    // Throw instead of exiting, so the caller (main, tests) decides what a failed start means.
    abortOnError: false,
    // Receipt callbacks are signed over their exact bytes.
    rawBody: true,
  });
  app.useGlobalFilters(new ApiErrorFilter(logger));
  const fastify = app.getHttpAdapter().getInstance();
  let draining = false;
  // Callback hooks, not async ones: every request runs all three, and an async hook costs a promise
  // and a microtask turn each (~4 µs a request over the three, measured with fastify.inject).
  fastify.addHook('onRequest', (_request, reply, done) => {
    if (!draining) return done();
    // Nothing new starts once SIGTERM came: the client retries elsewhere (or here, once restarted); it
    // is told so in the API's shape, and the connection is closed after the answer.
    void reply
      .status(503)
      .headers({ 'retry-after': '1', connection: 'close' })
      .type('application/json; charset=utf-8')
      .send({ ok: false, error: 'internal', message: 'the server is shutting down; nothing was changed, try again' });
  });
  fastify.addHook('onSend', (request, reply, payload, done) => {
    void reply.header('x-request-id', request.id);
    // Answers carry account data and, once, keys and webhook secrets: no cache keeps them, and no
    // browser reads a JSON body as another type. Static files (docs, dashboard) set their own caching.
    void reply.header('x-content-type-options', 'nosniff');
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    // While draining, every answer closes its connection: a client must not send its next request on it.
    if (draining) void reply.header('connection', 'close');
    done(null, payload);
  });
  // Route templates, never raw paths, so ids in URLs cannot blow up the label set.
  fastify.addHook('onResponse', (request, reply, done) => {
    core.metrics.httpRequestSeconds.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });
  // `Content-Type: application/json` with no body at all, as client libraries that set the header on
  // every request send it, is no body (what signup and a new key take), not a malformed one; a route
  // that needs a body says so itself. Any other body goes to Fastify's own JSON parser, and Nest keeps
  // the raw bytes (`rawBody`, for the receipt callbacks' signatures) as with its default parser, which
  // this one takes the place of.
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  app.useBodyParser<Server>('application/json', { bodyLimit: BODY_LIMIT_BYTES }, (request, body, done) =>
    body.length === 0 ? done(null, undefined) : parseJson(request, body.toString('utf8'), done),
  );
  await app.init();
  // JSON in and out (API.md): Nest registers a form-encoded parser, which would read `phone=…&code=…`
  // as a body, and Fastify a text one. Without them such bodies are refused as not JSON (400 invalid_request).
  fastify.removeContentTypeParser(['application/x-www-form-urlencoded', 'text/plain']);

  let closing: Promise<void> | undefined;
  return {
    app,
    core,
    close: () =>
      (closing ??= (async () => {
        logger.debug('closing the HTTP server: no new requests, in-flight ones finish');
        draining = true;
        // Keep-alive sockets would hold close() open until their timeout: drop each once its answer is out.
        const server = app.getHttpServer();
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        try {
          await app.close();
        } finally {
          clearInterval(sweep);
        }
        await core.close();
      })()),
  };
}

/** Node's `clientError` (see Fastify's defaultClientErrorHandler), answered with `{ ok:false, error, message }`. */
function clientErrorInApiShape(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'request not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'request headers too large']
        : [400, 'malformed HTTP request'];
  const body = JSON.stringify({ ok: false, error: 'invalid_request', message });
  if (socket.writable) {
    // The headers every other answer carries (the onSend hook does not run for these).
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
