import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

/** Prometheus scrape endpoint; labels never carry a phone, account id or key (I9). */
@Controller()
export class MetricsController {
  constructor(@Inject(CORE) private readonly core: Core) {}

  @Get('metrics')
  async metrics(@Res() reply: FastifyReply): Promise<void> {
    const text = await this.core.metrics.render();
    void reply.header('content-type', this.core.metrics.contentType).send(text);
  }
}
