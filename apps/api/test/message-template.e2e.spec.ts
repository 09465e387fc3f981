/**
 * PUT and GET /api/v1/template (beyond API.md, like GET /api/v1/keys): an
 * account's own SMS and voice text, refused with 400 invalid_request naming
 * the field when carriers would filter it or it would not fit one SMS.
 */
import { DEFAULT_SMS_TEMPLATE, DEFAULT_VOICE_TEMPLATE } from '#domain';
import { until } from '#testing';
import { get, signup, startServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ NEXO_WORKERS: 'off' });
});
afterAll(async () => server.stop());

const put = (key: string, body: unknown) =>
  fetch(`${server.base}/api/v1/template`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
const answer = async (res: Response | Promise<Response>) => {
  const r = await res;
  return { status: r.status, body: await r.json() };
};

const SMS = 'ACME: ma dang nhap cua ban la {code}';
const VOICE = 'ACME xin chào. Mã đăng nhập của bạn là {code}.';
/** The templates in force; `preview` (what they render to) has its own test. */
const inForce = (sms: string, voice: string) => ({ ok: true, sms, voice, preview: expect.objectContaining({ code: '123456' }) });
const DEFAULTS = inForce(DEFAULT_SMS_TEMPLATE, DEFAULT_VOICE_TEMPLATE);

describe('message templates over HTTP', () => {
  it('answers the defaults until set; a set template shows in GET, for this account only; null resets it', async () => {
    const { api_key: key } = await signup(server.base);
    const { api_key: other } = await signup(server.base);
    expect(await answer(get(server.base, '/api/v1/template', key))).toEqual({ status: 200, body: DEFAULTS });

    expect(await answer(put(key, { sms: SMS }))).toEqual({ status: 200, body: inForce(SMS, DEFAULT_VOICE_TEMPLATE) });
    expect(await answer(put(key, { voice: VOICE }))).toEqual({ status: 200, body: inForce(SMS, VOICE) });
    expect(await answer(get(server.base, '/api/v1/template', key))).toEqual({ status: 200, body: inForce(SMS, VOICE) });
    expect(await answer(get(server.base, '/api/v1/template', other))).toEqual({ status: 200, body: DEFAULTS });

    expect(await answer(put(key, { sms: null }))).toEqual({ status: 200, body: inForce(DEFAULT_SMS_TEMPLATE, VOICE) });
    expect(await answer(put(key, { voice: null }))).toEqual({ status: 200, body: DEFAULTS });
    expect(await answer(get(server.base, '/api/v1/template', key))).toEqual({ status: 200, body: DEFAULTS });
  });

  it('shows the default, and previews it, for a template stored under older rules that today refuse (the carriers are sent the default)', async () => {
    const { api_key: key, account_id } = await signup(server.base);
    const phishing = 'Tai khoan bi khoa. Xac minh tai https://evil.example/login ma {code}';
    // Stored before links were refused: appended as the decider did then.
    await server.running.core.store.append(`account-${account_id}`, [{ type: 'MessageTemplateSet', data: { sms: phishing, voice: VOICE, at: new Date().toISOString() } }], 'any');
    const seen = await until('the template projected', async () => {
      const a = await answer(get(server.base, '/api/v1/template', key));
      return a.body.voice === VOICE ? a : undefined;
    });
    expect(seen.body).toMatchObject({ sms: DEFAULT_SMS_TEMPLATE, voice: VOICE });
    expect(seen.body.preview.sms).not.toContain('evil.example');
  });

  it('previews both templates with a sample code, as the carriers are sent them', async () => {
    const { api_key: key } = await signup(server.base);
    const defaults = (await answer(get(server.base, '/api/v1/template', key))).body;
    expect(defaults.preview.sms).toBe(DEFAULT_SMS_TEMPLATE.replace('{code}', '123456'));
    const digits = 'một, hai, ba, bốn, năm, sáu';
    expect((await answer(put(key, { sms: SMS, voice: VOICE }))).body.preview).toEqual({
      code: '123456',
      sms: 'ACME: ma dang nhap cua ban la 123456',
      voice: `ACME xin chào. Mã đăng nhập của bạn là ${digits}. Xin nhắc lại: ${digits}.`,
    });
  });

  it.each<[string, unknown, RegExp]>([
    ['no {code}', { sms: 'Ma xac thuc cua ban' }, /^sms: template must contain \{code\}/],
    ['a flagged word', { sms: 'Ma {code} cho vi crypto cua ban' }, /^sms: carriers filter messages containing "crypto"/],
    ['a flagged Vietnamese word', { voice: 'Mã ví của bạn là {code}' }, /^voice: carriers filter messages containing "ví"/],
    ['more than one SMS', { sms: `{code} ${'x'.repeat(150)}` }, /^sms: does not fit one SMS with a 10-digit code \(161\/160\)/],
    ['a control character', { sms: 'Ma {code}\u0007' }, /^sms: control characters are not allowed/],
    ['a phishing link', { sms: 'Your account is locked. Verify now at https://evil.example/login code {code}' }, /^sms: templates cannot contain links or web addresses/],
    ['a zero-width space inside a flagged word', { voice: 'Mã v\u200Bí của bạn là {code}' }, /^voice: carriers filter messages containing "ví"; voice: contains invisible or format characters \(U\+200B\)/],
    ['{code} twice in a call', { voice: '{code} {code}' }, /^voice: \{code\} must appear once/],
    ['not a string', { sms: 1234 }, /^sms: /],
    ['an empty template', { voice: '' }, /^voice: /],
    ['an unknown field', { sms: SMS, text: 'x' }, /text/],
  ])('refuses %s with 400 invalid_request naming the field, and records nothing', async (_what, body, message) => {
    const { api_key: key } = await signup(server.base);
    const head = await server.running.core.store.headPosition();
    expect(await answer(put(key, body))).toEqual({ status: 400, body: { ok: false, error: 'invalid_request', message: expect.stringMatching(message) } });
    expect(await server.running.core.store.headPosition()).toBe(head);
    expect(await answer(get(server.base, '/api/v1/template', key))).toEqual({ status: 200, body: DEFAULTS });
  });

  it('needs a key', async () => {
    expect(await answer(fetch(`${server.base}/api/v1/template`))).toMatchObject({ status: 401, body: { ok: false, error: 'unauthorized' } });
  });
});
