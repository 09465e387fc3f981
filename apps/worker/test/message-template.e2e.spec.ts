/**
 * An account's message templates, from the account decider to what the
 * upstream is handed: SMS over a real SMPP session to the simulator's SMSC,
 * which records the text of each `submit_sm`; voice through the in-process
 * simulator, whose submits the test records on the way in (the simulator has
 * no wire to read the speech back from). The embedded pipeline otherwise:
 * SQLite log, in-process bus, relay and dispatcher.
 */
import { SmppSimulator, type SubmitRequest } from '#carriers';
import { accountDecider, accountStream, DEFAULT_SMS_TEMPLATE } from '#domain';
import { until } from '#testing';
import { nextPhone, startPipeline, type Pipeline } from './pipeline.harness.js';

const FAST = { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 };
const SMS = 'ACME: ma dang nhap cua ban la {code}';
const VOICE = 'ACME xin chào. Mã đăng nhập của bạn là {code}.';

describe("an account's templates reach the carrier; other accounts keep the default", () => {
  let smsc: SmppSimulator;
  let pipeline: Pipeline;
  const voiceSubmits: SubmitRequest[] = [];

  beforeAll(async () => {
    smsc = await SmppSimulator.start({ systemId: 'nexo', password: 'secret', config: FAST, recordSubmissions: 100 });
    pipeline = await startPipeline({
      carriers: {
        providers: [
          { kind: 'smpp', name: 'smsc', host: '127.0.0.1', port: smsc.port, systemId: 'nexo', password: 'secret', sourceAddr: 'NEXO' },
          { kind: 'simulator', name: 'voicesim', simulator: FAST },
        ],
        routes: { vinaphone: { sms: ['smsc'], voice: ['voicesim'] } },
      },
    });
    const voice = pipeline.carriers.gateways.get('voicesim')!;
    const submit = voice.submit.bind(voice);
    voice.submit = (request) => {
      voiceSubmits.push(request);
      return submit(request);
    };
  });
  afterAll(async () => {
    await pipeline?.stop();
    await smsc?.close();
  });

  const setTemplate = (accountId: string, fields: { sms?: string | null; voice?: string | null }) =>
    pipeline.runner.handle(accountStream(accountId), accountDecider, { type: 'SetMessageTemplate', ...fields, at: new Date().toISOString() });
  /** The text the SMSC was handed for this phone (national form `091…`, sent as `8491…`). */
  const smsTo = (phone: string) =>
    until(`an SMS to ${phone}`, () => smsc.submissions().find((s) => s.destination === `84${phone.slice(1)}`)?.text, { timeoutMs: 10_000, everyMs: 25 });

  it('sends SMS and voice in the account template, the default to another account, and the default again after a reset', async () => {
    const [custom, plain] = await Promise.all([pipeline.openAccount({ deposit: 1_000_000n }), pipeline.openAccount({ deposit: 1_000_000n })]);
    await setTemplate(custom, { sms: SMS, voice: VOICE });

    const [p1, p2, p3, p4] = [nextPhone(['091']), nextPhone(['091']), nextPhone(['091']), nextPhone(['091'])];
    await pipeline.send(custom, p1, { channel: 'sms', code: '482913' });
    await pipeline.send(plain, p2, { channel: 'sms', code: '907153' });
    const call = await pipeline.send(custom, p3, { channel: 'voice', code: '2468' });

    expect(await smsTo(p1)).toBe('ACME: ma dang nhap cua ban la 482913');
    expect(await smsTo(p2)).toBe(DEFAULT_SMS_TEMPLATE.replace('{code}', '907153'));
    const speech = await until('the voice submit', () => voiceSubmits.find((r) => r.otpId === call.otpId), { timeoutMs: 10_000, everyMs: 25 });
    expect(speech).toMatchObject({
      channel: 'voice',
      digits: '2468',
      speech: 'ACME xin chào. Mã đăng nhập của bạn là hai, bốn, sáu, tám. Xin nhắc lại: hai, bốn, sáu, tám.',
    });

    await setTemplate(custom, { sms: null });
    await pipeline.send(custom, p4, { channel: 'sms', code: '135790' });
    expect(await smsTo(p4)).toBe(DEFAULT_SMS_TEMPLATE.replace('{code}', '135790'));
  });
});
