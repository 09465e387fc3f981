/**
 * The customer dashboard at /dashboard: one static page, its script,
 * stylesheet and icon from a fixed allow-list, and QR codes of deposit
 * addresses. The page carries no data and no key: its script reads the public
 * API with the key the customer pastes, so the dashboard can show nothing the
 * API would not.
 */
import { createHash } from 'node:crypto';
import { Controller, Get, NotFoundException, Param, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import QRCode from 'qrcode';
import { z } from 'zod';
import { parseInput } from '../http/validation.js';
import { DASHBOARD_CSS, dashboardHtml, FAVICON_SVG } from './dashboard.page.js';
import { DASHBOARD_JS } from './dashboard.script.js';

/**
 * Scripts and styles from this origin only, no inline code, and Trusted Types
 * with no policy: any `innerHTML = string` in the page throws instead of
 * parsing API data as markup. form-action 'none' keeps a sign-in form that
 * somehow submits without the script from sending the key anywhere.
 */
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  body: string;
  type: string;
  version: string;
}

function asset(body: string, type: string): Asset {
  return { body, type, version: createHash('sha256').update(body).digest('base64url').slice(0, 16) };
}

const ASSETS: Readonly<Record<string, Asset>> = {
  'app.js': asset(DASHBOARD_JS, 'application/javascript; charset=utf-8'),
  'app.css': asset(DASHBOARD_CSS, 'text/css; charset=utf-8'),
  'favicon.svg': asset(FAVICON_SVG, 'image/svg+xml'),
};

const PAGE = dashboardHtml({ js: ASSETS['app.js'].version, css: ASSETS['app.css'].version });

/** EVM addresses only: the endpoint must not become a general QR (or content) generator for any text. */
const QrQuery = z.strictObject({ address: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address') });

@Controller('dashboard')
export class DashboardController {
  @Get()
  page(@Res() reply: FastifyReply): void {
    void reply
      .headers({
        ...COMMON_HEADERS,
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': PAGE_CSP,
        'x-frame-options': 'DENY',
        'cross-origin-opener-policy': 'same-origin',
        'cache-control': 'no-cache',
      })
      .send(PAGE);
  }

  @Get('qr.svg')
  async qr(@Query() query: unknown, @Res() reply: FastifyReply): Promise<void> {
    const { address } = parseInput(QrQuery, query, 'query');
    const svg = await QRCode.toString(address, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    void reply
      .headers({
        ...COMMON_HEADERS,
        'content-type': 'image/svg+xml',
        // Opened on its own, the SVG may not run or fetch anything.
        'content-security-policy': "default-src 'none'",
        'cache-control': 'public, max-age=86400',
      })
      .send(svg);
  }

  @Get(':asset')
  asset(@Param('asset') name: string, @Query('v') version: unknown, @Res() reply: FastifyReply): void {
    const a = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!a) throw new NotFoundException();
    // The page links each asset with its content hash, so that URL never changes meaning; any other is revalidated.
    const cache = version === a.version ? 'public, max-age=31536000, immutable' : 'no-cache';
    void reply.headers({ ...COMMON_HEADERS, 'content-type': a.type, 'cache-control': cache }).send(a.body);
  }
}
