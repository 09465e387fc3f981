/**
 * `/openapi.json` and the Swagger UI at `/docs`, served from swagger-ui-dist's
 * files (a fixed allow-list, read once) with the document built from our zod schemas.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Controller, Get, Header, Inject, NotFoundException, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';
import { openApiDocument } from './openapi.js';

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'application/javascript; charset=utf-8',
};

const require = createRequire(import.meta.url);
const assetDir = (require('swagger-ui-dist') as { getAbsoluteFSPath(): string }).getAbsoluteFSPath();
const assetCache = new Map<string, Buffer>();

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NEXO ROUTE API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body></html>`;

/** The page's own script, served as a file so that the policy below allows scripts from this origin only. */
const INIT = Buffer.from(
  // validatorUrl null: no badge from validator.swagger.io (outside the policy, and it would tell them our document's URL).
  "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout', validatorUrl: null });\n",
);

/**
 * Customers paste their key into the page's Authorize dialog: no script from elsewhere, no framing
 * (clickjacking). Swagger UI sets inline styles and shows data: images, and "Try it out" calls this origin.
 */
const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

@Controller()
export class DocsController {
  private readonly document: string;

  constructor(@Inject(CORE) core: Core) {
    this.document = JSON.stringify(openApiDocument(core.config.chains.map((c) => c.slug)));
  }

  @Get('openapi.json')
  @Header('content-type', 'application/json; charset=utf-8')
  openapi(): string {
    return this.document;
  }

  @Get('docs')
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('content-security-policy', DOCS_CSP)
  @Header('x-frame-options', 'DENY')
  page(): string {
    return PAGE;
  }

  @Get('docs/:asset')
  asset(@Param('asset') name: string, @Res() reply: FastifyReply): void {
    if (name === 'init.js') {
      void reply.header('content-type', 'application/javascript; charset=utf-8').header('cache-control', 'no-cache').send(INIT);
      return;
    }
    // Own keys only: `constructor` or `__proto__` must be an unknown asset, not a file read.
    const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!type) throw new NotFoundException();
    let body = assetCache.get(name);
    if (!body) {
      body = readFileSync(join(assetDir, name));
      assetCache.set(name, body);
    }
    void reply.header('content-type', type).header('cache-control', 'public, max-age=86400').send(body);
  }
}
