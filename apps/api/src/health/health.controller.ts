import { Controller, Get, HttpCode, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

@Controller('health')
export class HealthController {
  constructor(@Inject(CORE) private readonly core: Core) {}

  @Get('live')
  @HttpCode(200)
  live() {
    return { ok: true };
  }

  /** Ready once the event store and the bus (Kafka in the distributed mode) answer and the projections have caught up (lag under the readiness bound). */
  @Get('ready')
  async ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const checks = await this.core.readiness();
    if (!checks.ok) void reply.status(503);
    return checks;
  }
}
