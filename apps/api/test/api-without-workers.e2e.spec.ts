/**
 * An API beside distributed workers (`NEXO_WORKERS=off`) submits nothing
 * itself: it routes (which channels a carrier has) from the configuration but
 * opens no gateway, so it binds no SMPP session. SMSCs cap the sessions of one
 * account; every API replica binding its own would leave the workers refused.
 */
import { SmppSimulator } from '#carriers';
import { freshPhone, post, signup, startServer, type TestServer } from './harness.js';

describe('the API without the pipeline in its process', () => {
  let smsc: SmppSimulator;
  let server: TestServer;

  beforeAll(async () => {
    smsc = await SmppSimulator.start({ systemId: 'nexo', password: 'secret', config: { timeScale: 0.001 } });
    server = await startServer({
      NEXO_WORKERS: 'off',
      NEXO_CARRIERS: JSON.stringify({
        providers: [{ kind: 'smpp', name: 'smsc', host: '127.0.0.1', port: smsc.port, systemId: 'nexo', password: 'secret', sourceAddr: 'NEXO' }],
        routes: { viettel: { sms: ['smsc'] }, vinaphone: { sms: ['smsc'] }, mobifone: { sms: ['smsc'] }, vietnamobile: { sms: ['smsc'] } },
      }),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await smsc?.close();
  });

  it('accepts sends by the routing table and binds no SMPP session', async () => {
    const { api_key } = await signup(server.base);
    const sms = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '482913', channel: 'sms' });
    expect(sms.status).toBe(200);
    // No voice route in this table: the routing table still answers for the channels.
    const voice = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '482913', channel: 'voice' });
    expect(await voice.json()).toMatchObject({ ok: false, error: 'no_route' });
    // A gateway binds as soon as it is opened; give it the time it would take.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(smsc.stats()).toMatchObject({ binds: 0, bindFailures: 0 });
  });
});
