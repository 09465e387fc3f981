import smpp from 'smpp';
import { SentMessages, readDeliverSm } from './smpp.receipts.js';

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);

/** A deliver_sm (or `command`) as it comes off the wire: encoded, then parsed back by smpp@0.5. */
function wire(fields: Record<string, unknown>, command = 'deliver_sm'): smpp.PDU {
  const pdu = new smpp.PDU(command, { sequence_number: 1, ...fields });
  return new smpp.PDU(pdu.toBuffer());
}

describe('reading deliver_sm receipts', () => {
  const sent = new SentMessages(10);
  sent.remember('00ab12', 'otp1', 2);

  it('reads id and stat from the DLR text, ties it to the OTP, and cuts the text: field', () => {
    const pdu = wire({ esm_class: 0x04, short_message: 'id:00ab12 sub:001 dlvrd:001 submit date:2405011200 done date:2405011201 stat:DELIVRD err:000 text:Ma 482913' });
    expect(readDeliverSm('smsc', pdu, sent, NOW)).toEqual({
      kind: 'receipt',
      receipt: {
        provider: 'smsc',
        providerMessageId: '00ab12',
        status: 'delivered',
        raw: 'id:00ab12 sub:001 dlvrd:001 submit date:2405011200 done date:2405011201 stat:DELIVRD err:000',
        at: new Date(NOW).toISOString(),
        otpId: 'otp1',
        attempt: 2,
      },
    });
  });

  it('prefers receipted_message_id and falls back to message_state when the text says nothing', () => {
    const pdu = wire({ esm_class: 0x04, short_message: '', receipted_message_id: 'AB12', message_state: 8 });
    const r = readDeliverSm('smsc', pdu, sent, NOW);
    // Same value as 00ab12, spelt without zeros and upper-case.
    expect(r).toMatchObject({ kind: 'receipt', receipt: { providerMessageId: '00ab12', status: 'rejected', otpId: 'otp1' } });
    expect(r.kind === 'receipt' && r.receipt.raw).toBe('receipted_message_id:AB12 message_state:8');
  });

  it('reads a data_sm receipt that carries only the receipted_message_id and message_state TLVs (no short_message)', () => {
    const pdu = wire({ esm_class: 0x04, source_addr: '84912300001', destination_addr: 'NEXO', receipted_message_id: '00ab12', message_state: 5 }, 'data_sm');
    expect(pdu.command).toBe('data_sm');
    const r = readDeliverSm('smsc', pdu, sent, NOW);
    expect(r).toMatchObject({ kind: 'receipt', receipt: { providerMessageId: '00ab12', status: 'undelivered', otpId: 'otp1', attempt: 2 } });
    expect(r.kind === 'receipt' && r.receipt.raw).toBe('receipted_message_id:00ab12 message_state:5');
    // A data_sm that is not a receipt (mobile-originated) is left alone, as a deliver_sm would be.
    expect(readDeliverSm('smsc', wire({ esm_class: 0x00, message_payload: 'hi' }, 'data_sm'), sent, NOW)).toEqual({ kind: 'ignore', reason: 'not_receipt' });
  });

  it('matches a decimal spelling of a hex id', () => {
    const pdu = wire({ esm_class: 0x04, short_message: `id:${0xab12} stat:UNDELIV err:001` });
    expect(readDeliverSm('smsc', pdu, sent, NOW)).toMatchObject({ receipt: { providerMessageId: '00ab12', status: 'undelivered' } });
  });

  it('still reports a receipt it cannot tie to an OTP, under the id it carries', () => {
    const r = readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'id:zz99 stat:EXPIRED' }), sent, NOW);
    expect(r).toEqual({ kind: 'receipt', receipt: expect.objectContaining({ providerMessageId: 'zz99', status: 'expired' }) });
    expect(r.kind === 'receipt' && 'otpId' in r.receipt).toBe(false);
  });

  it('ignores mobile-originated messages, intermediate states and garbage', () => {
    expect(readDeliverSm('smsc', wire({ esm_class: 0x00, short_message: 'id:1 stat:DELIVRD' }), sent, NOW)).toEqual({ kind: 'ignore', reason: 'not_receipt' });
    expect(readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'id:1 stat:ENROUTE' }), sent, NOW)).toEqual({ kind: 'ignore', reason: 'intermediate' });
    expect(readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'hello' }), sent, NOW)).toEqual({ kind: 'ignore', reason: 'unreadable' });
  });

  it('reads spelled-out status words, and names a word it does not know (the gateway logs it)', () => {
    const failed = readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'id:1 stat:FAILED err:001' }), sent, NOW);
    expect(failed).toMatchObject({ kind: 'receipt', receipt: { status: 'undelivered' } });
    expect(readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'id:1 stat:DELIVERED' }), sent, NOW)).toMatchObject({ kind: 'receipt', receipt: { status: 'delivered' } });
    expect(readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'id:1 stat:WEIRD' }), sent, NOW)).toEqual({ kind: 'ignore', reason: 'unknown_stat', stat: 'WEIRD' });
    // The message_state TLV still answers when the word is unknown.
    expect(readDeliverSm('smsc', wire({ esm_class: 0x04, short_message: 'id:1 stat:WEIRD', message_state: 2 }), sent, NOW)).toMatchObject({ kind: 'receipt', receipt: { status: 'delivered' } });
  });
});

describe('remembered message ids', () => {
  it('belong to the newest message when the SMSC hands an id out again (its counter started over)', () => {
    const sent = new SentMessages(10);
    sent.remember('1000', 'otpOld', 1);
    sent.remember('2000', 'otpOther', 1);
    sent.remember('1000', 'otpNew', 2);
    expect(sent.find('1000')).toMatchObject({ otpId: 'otpNew', attempt: 2 });
    expect(sent.find('2000')?.otpId).toBe('otpOther');
    expect(sent.size).toBe(2);
    // The reused id is now the newest: bounded eviction takes the others first.
    const small = new SentMessages(2);
    small.remember('a1', 'o1', 1);
    small.remember('b2', 'o2', 1);
    small.remember('a1', 'o3', 1);
    small.remember('c3', 'o4', 1);
    expect(small.find('a1')?.otpId).toBe('o3');
    expect(small.find('b2')).toBeUndefined();
  });

  it('forget the oldest beyond their bound', () => {
    const sent = new SentMessages(2);
    sent.remember('a1', 'o1', 1);
    sent.remember('b2', 'o2', 1);
    sent.remember('c3', 'o3', 1);
    expect(sent.find('c3')?.otpId).toBe('o3');
    expect(sent.find('b2')?.otpId).toBe('o2');
    expect(sent.find('a1')).toBeUndefined();
    expect(sent.size).toBe(2);
  });
});
