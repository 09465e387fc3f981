/**
 * What the SMPP adapter's specs share: one SMS request shape, one way to start
 * the adapter against a local SMSC (the simulator's SMPP face or
 * scripted-smsc.ts), and a fresh scripted SMSC per test.
 */
import type { SmsSubmit } from '../src/carrier-gateway.port.js';
import { SmppCarrierGateway } from '../src/adapters/smpp.carrier-gateway.js';
import type { SmppCarrierGatewayOptions } from '../src/adapters/smpp.options.js';
import { ScriptedSmsc } from './scripted-smsc.js';

/** The text of SMS number `i`: it ends in its six digits, 100000 + i, so the SMSC's copy says which one it is. */
export const smsText = (i: number): string => `Ma xac thuc ${100000 + i}`;

/** Which SMS a text written by smsText is, read back from what the SMSC received. */
export const smsIndex = (text: string): number => Number(text.slice(-6)) - 100000;

/** SMS number `i` of OTP `otp${i}`, first attempt, to a Vinaphone number of its own unless `phoneE164` is given. */
export const sms = (i: number, phoneE164 = `+849123${String(i).padStart(5, '0')}`): SmsSubmit => ({
  otpId: `otp${i}`,
  attempt: 1,
  phoneE164,
  carrier: 'vinaphone',
  channel: 'sms',
  text: smsText(i),
  digits: String(100000 + i),
});

/**
 * The adapter on 127.0.0.1:`port` with the credentials the test SMSCs accept
 * (nexo/secret, brandname NEXO), as provider `smsc`; receipts are dropped
 * unless `opts.sink` takes them. Every other option is the adapter's default
 * unless `opts` sets it.
 */
export function startSmppGateway(port: number, opts: Partial<SmppCarrierGatewayOptions> = {}): SmppCarrierGateway {
  return SmppCarrierGateway.start({
    provider: 'smsc',
    host: '127.0.0.1',
    port,
    systemId: 'nexo',
    password: 'secret',
    sourceAddr: 'NEXO',
    sink: () => undefined,
    ...opts,
  });
}

export interface ScriptedLink {
  /** This test's SMSC. */
  readonly smsc: ScriptedSmsc;
  /** The adapter this test started, if it started one. */
  readonly gw: SmppCarrierGateway | undefined;
  /** Starts the adapter against this test's SMSC with fast reconnects and a short close grace, then `defaults()`, then `opts`. */
  start(opts?: Partial<SmppCarrierGatewayOptions>): SmppCarrierGateway;
}

/**
 * Gives each test of the calling describe block its own ScriptedSmsc, and
 * after the test closes the adapter it started before that SMSC, so no
 * socket, timer or reconnect outlives its test.
 */
export function scriptedSmscPerTest(defaults: () => Partial<SmppCarrierGatewayOptions> = () => ({})): ScriptedLink {
  let smsc: ScriptedSmsc | undefined;
  let gw: SmppCarrierGateway | undefined;
  const current = (): ScriptedSmsc => {
    if (!smsc) throw new Error('no scripted SMSC outside a test');
    return smsc;
  };

  beforeEach(async () => {
    smsc = await ScriptedSmsc.start();
  });

  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await smsc?.close();
    smsc = undefined;
  });

  return {
    get smsc() {
      return current();
    },
    get gw() {
      return gw;
    },
    start: (opts = {}) =>
      (gw = startSmppGateway(current().port, { reconnect: { baseMs: 20, maxMs: 40 }, closeGraceMs: 100, ...defaults(), ...opts })),
  };
}
