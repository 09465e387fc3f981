import { formatDlrText, parseDlrText, scrubRaw, statToStatus, MESSAGE_STATE_TO_STATUS } from './delivery-receipt.codec.js';

describe('delivery receipt text', () => {
  const text = 'id:0a1b2c sub:001 dlvrd:001 submit date:2405011230 done date:2405011231 stat:DELIVRD err:000 text:Ma xac thuc cua ban';

  it('parses id, stat and err from the de-facto DLR format', () => {
    expect(parseDlrText(text)).toEqual({ id: '0a1b2c', stat: 'DELIVRD', err: '000' });
    expect(parseDlrText('id:42 stat:undeliv')).toEqual({ id: '42', stat: 'UNDELIV' });
    expect(parseDlrText('stat:DELIVRD')).toBeNull();
    expect(parseDlrText('hello')).toBeNull();
  });

  it('maps every stat word the brief names', () => {
    expect(['DELIVRD', 'UNDELIV', 'REJECTD', 'EXPIRED', 'ACCEPTD'].map(statToStatus)).toEqual([
      'delivered',
      'undelivered',
      'rejected',
      'expired',
      'accepted',
    ]);
    expect(['ANSWERED', 'NOANSWER', 'BUSY', 'DELETED'].map(statToStatus)).toEqual(['answered', 'unanswered', 'unanswered', 'undelivered']);
    expect(statToStatus('ENROUTE')).toBeNull();
    expect(statToStatus('WHATEVER')).toBeUndefined();
    expect(statToStatus('constructor')).toBeUndefined();
    expect(MESSAGE_STATE_TO_STATUS[2]).toBe('delivered');
    expect(MESSAGE_STATE_TO_STATUS[8]).toBe('rejected');
  });

  it('maps the spelled-out words SMSCs and aggregators also send', () => {
    expect(['DELIVERED', 'delivered', 'UNDELIVERED', 'UNDELIVERABLE', 'FAILED', 'REJECTED', 'ACCEPTED'].map(statToStatus)).toEqual([
      'delivered',
      'delivered',
      'undelivered',
      'undelivered',
      'undelivered',
      'rejected',
      'accepted',
    ]);
  });

  it('formats what it parses', () => {
    const d = new Date('2024-05-01T12:30:00Z');
    const f = formatDlrText({ id: 'abc', stat: 'UNDELIV', submitted: d, done: d });
    expect(f).toBe('id:abc sub:001 dlvrd:000 submit date:2405011230 done date:2405011230 stat:UNDELIV err:001');
    expect(parseDlrText(f)).toEqual({ id: 'abc', stat: 'UNDELIV', err: '001' });
  });

  it('I9: cuts the text: field, which echoes the message and its code, and bounds the length', () => {
    expect(scrubRaw(`${text.replace('Ma xac thuc cua ban', 'Ma 482913 la')}`)).not.toContain('482913');
    expect(scrubRaw(text)).toBe('id:0a1b2c sub:001 dlvrd:001 submit date:2405011230 done date:2405011231 stat:DELIVRD err:000');
    expect(scrubRaw('x'.repeat(5000))).toHaveLength(1000);
  });
});
