/**
 * Structured JSON logs (pino). Redaction is the last line of defence for I9:
 * code paths never log codes, keys, secrets or full phone numbers, and these
 * paths are censored even if one slips into a log object.
 */
import { pino, type Logger } from 'pino';
import type { LoggerService } from '@nestjs/common';
import { Writable } from 'node:stream';

export type { Logger };

export const REDACT_PATHS = [
  'code',
  '*.code',
  'phone',
  '*.phone',
  'secret',
  '*.secret',
  'api_key',
  '*.api_key',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'password',
  '*.password',
];

/** A log destination that keeps every line (JSON, as written) in `lines`: for tests that read the service's logs. */
export function linesInto(lines: string[]): Writable {
  return new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
}

export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'nexo',
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/**
 * Errors as pino serializes them, with a system or library error code (`EADDRINUSE`,
 * `ECONNREFUSED`, `SQLITE_BUSY`) kept as `error_code`: every `code` field is redacted, since an
 * OTP's code must never reach a log, and an operator needs the error's. Only names in capitals
 * pass, so digits never do.
 */
function serializeError(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown> | undefined;
  if (serialized === undefined || serialized === null || typeof serialized !== 'object') return serialized;
  const code = (error as { code?: unknown } | null)?.code;
  delete serialized.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) serialized.error_code = code;
  return serialized;
}

/** Nest's own messages (module init, route mapping) through the same pino logger. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
}
