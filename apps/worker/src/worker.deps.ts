/** What every consumer is built from; the same in the embedded process and in a distributed worker. */
import type Database from 'better-sqlite3';
import type { MessageBus } from '#bus';
import type { Carriers } from '#carriers';
import type { OpenCharge } from '#domain';
import type { CommandRunner, EventStore } from '#eventstore';
import type { Logger } from '#observability';
import type { Cipher } from '#security';

export interface WorkerMetrics {
  /** One carrier submission: its duration, and the error code when it failed. */
  submitted?(provider: string, seconds: number, errorCode?: string): void;
  /**
   * An OTP settled (counted where the event is appended, once), with its charge as the account's
   * state held it just before (carrier, channel and when it was requested; the read models may not
   * have the OTP yet).
   */
  settled?(otpId: string, outcome: { type: 'Delivered'; via: string } | { type: 'Refunded'; reason: string }, charge: OpenCharge | undefined): void;
  webhookAttempt?(outcome: 'success' | 'http_4xx' | 'http_5xx' | 'timeout' | 'network' | 'refused'): void;
}

export interface WorkerDeps {
  store: EventStore;
  runner: CommandRunner;
  bus: MessageBus;
  /** Local SQLite: read models and the workers' own tables (the service's file in embedded mode). */
  db: Database.Database;
  cipher: Cipher;
  carriers: Carriers;
  logger: Logger;
  clock: () => Date;
  expiryMs: number;
  metrics?: WorkerMetrics;
}
