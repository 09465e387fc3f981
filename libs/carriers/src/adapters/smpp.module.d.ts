/**
 * Types for `smpp@0.5` (CommonJS, ships none): only what the adapter and the
 * simulator use. PDU fields are dynamic in the library, hence the index signature.
 */
declare module 'smpp' {
  import type { EventEmitter } from 'node:events';
  import type { Server as NetServer, Socket } from 'node:net';

  namespace smpp {
    interface PDU {
      command: string;
      command_id: number;
      command_status: number;
      sequence_number: number;
      isResponse(): boolean;
      response(options?: Record<string, unknown>): PDU;
      toBuffer(): Buffer;
      [field: string]: unknown;
    }

    type ResponseCallback = (pdu: PDU) => void;
    type Shortcut = (options?: Record<string, unknown>, onResponse?: ResponseCallback, onSent?: ResponseCallback) => boolean;

    interface Session extends EventEmitter {
      socket: Socket;
      server?: Server;
      send(pdu: PDU, onResponse?: ResponseCallback, onSent?: ResponseCallback): boolean;
      pause(): void;
      resume(): void;
      close(callback?: () => void): void;
      destroy(callback?: () => void): void;
      bind_transceiver: Shortcut;
      submit_sm: Shortcut;
      deliver_sm: Shortcut;
      enquire_link: Shortcut;
      unbind: Shortcut;
      generic_nack: Shortcut;
    }

    interface Server extends NetServer {
      sessions: Session[];
    }

    interface ConnectOptions {
      host?: string;
      port?: number;
      url?: string;
      auto_enquire_link_period?: number;
    }
  }

  const smpp: {
    connect(options: smpp.ConnectOptions, listener?: () => void): smpp.Session;
    createServer(options: Record<string, unknown>, listener?: (session: smpp.Session) => void): smpp.Server;
    /** `new PDU(buffer)` parses one PDU off the wire. */
    PDU: new (command: string | Buffer, options?: Record<string, unknown>) => smpp.PDU;
    errors: Readonly<Record<string, number>>;
    consts: {
      ESM_CLASS: Readonly<Record<string, number>>;
      MESSAGE_STATE: Readonly<Record<string, number>>;
      REGISTERED_DELIVERY: Readonly<Record<string, number>>;
      TON: Readonly<Record<string, number>>;
      NPI: Readonly<Record<string, number>>;
      ENCODING: Readonly<Record<string, number>>;
    };
  };
  export = smpp;
}
