/**
 * A stand-in for EventStoreDB's gRPC Streams service (BatchAppend and Append;
 * Read for streams, $all and $all subscriptions; ServerFeatures), in memory,
 * on an ephemeral port.
 *
 * EventStoreDB cannot run on this machine (no Docker), and the adapter should
 * not go untested until someone has one: this speaks the real wire protocol to
 * the real @eventstore/db-client, so everything on our side of the socket is
 * exercised. It copies the server behaviours the adapter depends on, each
 * noted where it is implemented: byte-offset positions with gaps and
 * commit = prepare per event, an inclusive start for $all reads and an
 * exclusive one for subscriptions, $-prefixed system events interleaved with
 * ours, StreamNotFound on missing streams, flow control on subscriptions. The
 * real server remains the authority: ESDB_URL runs the same contract on it.
 */
import { randomUUID } from 'node:crypto';
import grpc from '@grpc/grpc-js';
import anyPb from 'google-protobuf/google/protobuf/any_pb.js';
import featuresGrpc from '@eventstore/db-client/generated/serverfeatures_grpc_pb.js';
import featuresPb from '@eventstore/db-client/generated/serverfeatures_pb.js';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import statusPb from '@eventstore/db-client/generated/status_pb.js';
import streamsGrpc from '@eventstore/db-client/generated/streams_grpc_pb.js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import type * as Streams from '@eventstore/db-client/generated/streams_pb.js';

interface StoredRecord {
  streamId: string;
  revision: bigint;
  position: bigint;
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: Uint8Array;
  created: bigint;
}

type Expectation = { kind: 'any' | 'no_stream' | 'stream_exists' } | { kind: 'revision'; revision: bigint };
type Proposed = Omit<StoredRecord, 'streamId' | 'revision' | 'position' | 'created'>;
type AppendOutcome = { ok: true; last: StoredRecord } | { ok: false; current: bigint | undefined };

export interface FakeOptions {
  /**
   * Announce BatchAppend through ServerFeatures, as servers since 21.10 do;
   * the client then appends through it. Without it the client falls back to
   * the older Append call.
   */
  batchAppend?: boolean;
}

export interface SubscriptionStats {
  /** Events written to the call, whether or not the client has read them. */
  sent: number;
}

/** Unix-epoch .NET ticks, as the server's "created" metadata carries them. */
const ticksNow = () => BigInt(Date.now()) * 10_000n;

export class FakeEventStoreDb {
  private readonly log: StoredRecord[] = [];
  private readonly streams = new Map<string, StoredRecord[]>();
  private readonly listeners = new Set<() => void>();
  private nextPosition = 4_096n;
  private appends = 0;
  readonly subscriptions: SubscriptionStats[] = [];

  private server: grpc.Server | undefined;
  private boundPort = 0;

  private constructor(private readonly options: FakeOptions) {}

  static async start(options: FakeOptions = {}): Promise<FakeEventStoreDb> {
    const fake = new FakeEventStoreDb(options);
    await fake.listen(0);
    // The real server writes system events of its own from the start.
    fake.writeSystemEvent();
    return fake;
  }

  private async listen(port: number): Promise<void> {
    const server = new grpc.Server();
    this.boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
    );
    server.addService(streamsGrpc.StreamsService, {
      append: (call: grpc.ServerReadableStream<Streams.AppendReq, Streams.AppendResp>, callback: grpc.sendUnaryData<Streams.AppendResp>) =>
        this.onAppend(call, callback),
      read: (call: grpc.ServerWritableStream<Streams.ReadReq, Streams.ReadResp>) => this.onRead(call),
      batchAppend: (call: grpc.ServerDuplexStream<Streams.BatchAppendReq, Streams.BatchAppendResp>) => this.onBatchAppend(call),
    });
    if (this.options.batchAppend ?? true) {
      server.addService(featuresGrpc.ServerFeaturesService, {
        getSupportedMethods: (_call: unknown, callback: grpc.sendUnaryData<InstanceType<typeof featuresPb.SupportedMethods>>) => {
          const batch = new featuresPb.SupportedMethod().setServiceName('event_store.client.streams.Streams').setMethodName('BatchAppend');
          callback(null, new featuresPb.SupportedMethods().setMethodsList([batch]).setEventStoreServerVersion('24.10.0-fake'));
        },
      });
    }
    this.server = server;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `esdb://127.0.0.1:${this.port}?tls=false`;
  }

  /** Stops the server at once, as a crash would: open calls fail, new ones find nothing listening. */
  stop(): Promise<void> {
    this.server?.forceShutdown();
    this.server = undefined;
    return Promise.resolve();
  }

  /**
   * After `stop()`: listens again on the same port with the log it had, as a
   * node that was down (or out of reach) and comes back with its data.
   */
  async restart(): Promise<void> {
    if (this.server) throw new Error('the fake EventStoreDB is running');
    // Freed, the port could have been given to a client's outgoing connection meanwhile: try for a while.
    for (let tries = 1; ; tries++) {
      try {
        return await this.listen(this.boundPort);
      } catch (error) {
        if (tries >= 30) throw new Error(`the fake EventStoreDB could not listen on its port ${this.boundPort} again`, { cause: error });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** A `$statsCollected`-like record: $-typed, in a $-stream, between the application's events. */
  writeSystemEvent(): void {
    this.write('$stats-127.0.0.1:2113', [
      { id: randomUUID(), type: '$statsCollected', contentType: 'application/json', data: Buffer.from('{"proc-cpu":1}'), metadata: new Uint8Array() },
    ]);
  }

  private write(streamId: string, events: Proposed[]): StoredRecord[] {
    const stream = this.streams.get(streamId) ?? [];
    this.streams.set(streamId, stream);
    const created = ticksNow();
    const written = events.map((e) => {
      const record: StoredRecord = { ...e, streamId, revision: BigInt(stream.length), position: this.nextPosition, created };
      // Offsets grow by the record's size, as in the transaction file; positions are not counters.
      this.nextPosition += BigInt(120 + e.data.length + e.metadata.length + streamId.length);
      stream.push(record);
      this.log.push(record);
      return record;
    });
    for (const wake of this.listeners) wake();
    return written;
  }

  /** Checks the expectation and writes, in one synchronous step: appends are atomic and serialized, as on the server. */
  private decide(streamId: string, expected: Expectation, proposed: Proposed[]): AppendOutcome {
    const length = this.streams.get(streamId)?.length;
    const current = length === undefined ? undefined : BigInt(length - 1);
    const ok =
      expected.kind === 'any' ||
      (expected.kind === 'no_stream' && current === undefined) ||
      (expected.kind === 'stream_exists' && current !== undefined) ||
      (expected.kind === 'revision' && current === expected.revision);
    if (!ok) return { ok: false, current };
    const written = this.write(streamId, proposed);
    // Every other append is followed by a system event, so the log's last record is sometimes not ours.
    if (++this.appends % 2 === 0) this.writeSystemEvent();
    return { ok: true, last: written[written.length - 1] };
  }

  private static proposed(m: Streams.AppendReq.ProposedMessage | Streams.BatchAppendReq.ProposedMessage): Proposed {
    return {
      id: m.getId()!.getString(),
      type: m.getMetadataMap().get('type') ?? '',
      contentType: m.getMetadataMap().get('content-type') ?? 'application/octet-stream',
      data: m.getData_asU8(),
      metadata: m.getCustomMetadata_asU8(),
    };
  }

  private onAppend(call: grpc.ServerReadableStream<Streams.AppendReq, Streams.AppendResp>, callback: grpc.sendUnaryData<Streams.AppendResp>): void {
    let options: Streams.AppendReq.Options | undefined;
    const proposed: Proposed[] = [];
    call.on('data', (req: Streams.AppendReq) => {
      if (req.hasOptions()) options = req.getOptions();
      if (req.hasProposedMessage()) proposed.push(FakeEventStoreDb.proposed(req.getProposedMessage()!));
    });
    call.on('end', () => {
      if (!options) return callback({ code: grpc.status.INVALID_ARGUMENT, details: 'no options' });
      const streamId = Buffer.from(options.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8');
      const E = streamsPb.AppendReq.Options.ExpectedStreamRevisionCase;
      const c = options.getExpectedStreamRevisionCase();
      const expected: Expectation =
        c === E.REVISION ? { kind: 'revision', revision: BigInt(options.getRevision()) } : { kind: c === E.NO_STREAM ? 'no_stream' : c === E.STREAM_EXISTS ? 'stream_exists' : 'any' };
      const outcome = this.decide(streamId, expected, proposed);
      const resp = new streamsPb.AppendResp();
      if (!outcome.ok) {
        const wrong = new streamsPb.AppendResp.WrongExpectedVersion();
        if (outcome.current === undefined) wrong.setCurrentNoStream(new sharedPb.Empty());
        else wrong.setCurrentRevision(outcome.current.toString());
        if (expected.kind === 'revision') wrong.setExpectedRevision(expected.revision.toString());
        else if (expected.kind === 'no_stream') wrong.setExpectedNoStream(new sharedPb.Empty());
        else if (expected.kind === 'stream_exists') wrong.setExpectedStreamExists(new sharedPb.Empty());
        return callback(null, resp.setWrongExpectedVersion(wrong));
      }
      // The server answers with the commit position of the append's last event.
      const position = new streamsPb.AppendResp.Position().setCommitPosition(outcome.last.position.toString()).setPreparePosition(outcome.last.position.toString());
      const success = new streamsPb.AppendResp.Success().setCurrentRevision(outcome.last.revision.toString()).setPosition(position);
      callback(null, resp.setSuccess(success));
    });
  }

  /** One long-lived call per client carrying many appends, told apart by correlation id; a conflict is a google.rpc.Status. */
  private onBatchAppend(call: grpc.ServerDuplexStream<Streams.BatchAppendReq, Streams.BatchAppendResp>): void {
    const open = new Map<string, { options: Streams.BatchAppendReq.Options; proposed: Proposed[] }>();
    call.on('data', (req: Streams.BatchAppendReq) => {
      const correlation = req.getCorrelationId()!.getString();
      const pending = open.get(correlation) ?? { options: req.getOptions()!, proposed: [] };
      open.set(correlation, pending);
      pending.proposed.push(...req.getProposedMessagesList().map((m) => FakeEventStoreDb.proposed(m)));
      if (!req.getIsFinal()) return;
      open.delete(correlation);
      const { options, proposed } = pending;
      const streamId = Buffer.from(options.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8');
      const E = streamsPb.BatchAppendReq.Options.ExpectedStreamPositionCase;
      const c = options.getExpectedStreamPositionCase();
      const expected: Expectation =
        c === E.STREAM_POSITION
          ? { kind: 'revision', revision: BigInt(options.getStreamPosition()) }
          : { kind: c === E.NO_STREAM ? 'no_stream' : c === E.STREAM_EXISTS ? 'stream_exists' : 'any' };
      const outcome = this.decide(streamId, expected, proposed);
      const resp = new streamsPb.BatchAppendResp().setCorrelationId(new sharedPb.UUID().setString(correlation)).setStreamIdentifier(options.getStreamIdentifier());
      if (!outcome.ok) {
        const wrong = new sharedPb.WrongExpectedVersion();
        if (outcome.current === undefined) wrong.setCurrentNoStream(new sharedPb.Empty());
        else wrong.setCurrentStreamRevision(outcome.current.toString());
        if (expected.kind === 'revision') wrong.setExpectedStreamPosition(expected.revision.toString());
        else if (expected.kind === 'no_stream') wrong.setExpectedNoStream(new sharedPb.Empty());
        else if (expected.kind === 'stream_exists') wrong.setExpectedStreamExists(new sharedPb.Empty());
        else wrong.setExpectedAny(new sharedPb.Empty());
        const details = new anyPb.Any();
        details.pack(wrong.serializeBinary(), 'event_store.client.WrongExpectedVersion');
        const status = new statusPb.Status().setCode(9).setMessage('Wrong expected version').setDetails(details);
        return void call.write(resp.setError(status));
      }
      const position = new sharedPb.AllStreamPosition().setCommitPosition(outcome.last.position.toString()).setPreparePosition(outcome.last.position.toString());
      const success = new streamsPb.BatchAppendResp.Success().setCurrentRevision(outcome.last.revision.toString()).setPosition(position);
      call.write(resp.setSuccess(success));
    });
    call.on('end', () => call.end());
  }

  private toReadResp(r: StoredRecord): Streams.ReadResp {
    const recorded = new streamsPb.ReadResp.ReadEvent.RecordedEvent();
    recorded.setId(new sharedPb.UUID().setString(r.id));
    recorded.setStreamIdentifier(new sharedPb.StreamIdentifier().setStreamName(Buffer.from(r.streamId, 'utf8')));
    recorded.setStreamRevision(r.revision.toString());
    // Self-committed prepares: commit = prepare = the record's own offset.
    recorded.setCommitPosition(r.position.toString());
    recorded.setPreparePosition(r.position.toString());
    recorded.getMetadataMap().set('type', r.type).set('content-type', r.contentType).set('created', r.created.toString());
    recorded.setData(r.data);
    recorded.setCustomMetadata(r.metadata);
    const event = new streamsPb.ReadResp.ReadEvent();
    event.setEvent(recorded);
    event.setCommitPosition(r.position.toString());
    return new streamsPb.ReadResp().setEvent(event);
  }

  /**
   * Until the returned function is called, every forward read of $all of a full page (more than 64
   * records) answers `ms` late: a projection catch-up that takes its time. Reads of the head
   * (backwards), short reads (a lag measure asks for one event) and reads of streams answer at once.
   */
  slowForwardLogReads(ms: number): () => void {
    this.forwardLogReadDelayMs = ms;
    return () => {
      this.forwardLogReadDelayMs = 0;
    };
  }

  private forwardLogReadDelayMs = 0;

  private onRead(call: grpc.ServerWritableStream<Streams.ReadReq, Streams.ReadResp>): void {
    const options = call.request.getOptions()!;
    if (options.hasSubscription()) return this.subscribe(call, options);
    const backwards = options.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.BACKWARDS;
    if (this.forwardLogReadDelayMs > 0 && !backwards && !options.hasStream() && Number(options.getCount()) > 64) {
      setTimeout(() => this.answerRead(call, options, backwards), this.forwardLogReadDelayMs);
      return;
    }
    this.answerRead(call, options, backwards);
  }

  private answerRead(call: grpc.ServerWritableStream<Streams.ReadReq, Streams.ReadResp>, options: Streams.ReadReq.Options, backwards: boolean): void {
    const count = Number(options.getCount());
    let records: StoredRecord[];
    if (options.hasStream()) {
      const s = options.getStream()!;
      const streamId = Buffer.from(s.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8');
      const stream = this.streams.get(streamId);
      if (!stream) {
        const notFound = new streamsPb.ReadResp.StreamNotFound().setStreamIdentifier(s.getStreamIdentifier());
        call.write(new streamsPb.ReadResp().setStreamNotFound(notFound));
        return void call.end();
      }
      if (backwards) {
        const from = s.hasEnd() ? BigInt(stream.length - 1) : s.hasStart() ? 0n : BigInt(s.getRevision());
        records = stream.filter((r) => r.revision <= from).reverse();
      } else {
        const from = s.hasStart() ? 0n : s.hasEnd() ? BigInt(stream.length) : BigInt(s.getRevision());
        records = stream.filter((r) => r.revision >= from);
      }
    } else {
      const a = options.getAll()!;
      if (backwards) {
        // Backwards from a position: the records before it.
        const before = a.hasEnd() ? undefined : a.hasStart() ? 0n : BigInt(a.getPosition()!.getCommitPosition());
        records = this.log.filter((r) => before === undefined || r.position < before).reverse();
      } else {
        // Forwards from a position: that record included, as the server's $all reader does.
        const from = a.hasStart() ? 0n : a.hasEnd() ? this.nextPosition : BigInt(a.getPosition()!.getCommitPosition());
        records = this.log.filter((r) => r.position >= from);
      }
    }
    for (const r of records.slice(0, count)) call.write(this.toReadResp(r));
    call.end();
  }

  private subscribe(call: grpc.ServerWritableStream<Streams.ReadReq, Streams.ReadResp>, options: Streams.ReadReq.Options): void {
    const a = options.getAll();
    if (!a) return void call.destroy(new Error('the fake serves $all subscriptions only'));
    // Subscribing from a position: the records after it.
    let after = a.hasStart() ? -1n : a.hasEnd() ? this.nextPosition : BigInt(a.getPosition()!.getCommitPosition());
    const filter = options.hasFilter() && options.getFilter()!.hasEventType() ? new RegExp(options.getFilter()!.getEventType()!.getRegex()) : undefined;
    const stats: SubscriptionStats = { sent: 0 };
    this.subscriptions.push(stats);
    call.write(new streamsPb.ReadResp().setConfirmation(new streamsPb.ReadResp.SubscriptionConfirmation().setSubscriptionId(randomUUID())));

    let open = true;
    let draining = false;
    const pump = () => {
      if (!open || draining) return;
      let i = this.log.findIndex((r) => r.position > after);
      if (i < 0) return;
      for (; i < this.log.length; i++) {
        const r = this.log[i];
        after = r.position;
        if (filter && !filter.test(r.type)) continue;
        stats.sent++;
        // Flow control: stop when the call's buffer is full, go on when the client has read.
        if (!call.write(this.toReadResp(r))) {
          draining = true;
          call.once('drain', () => {
            draining = false;
            pump();
          });
          return;
        }
      }
    };
    const stop = () => {
      open = false;
      this.listeners.delete(pump);
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
    this.listeners.add(pump);
    pump();
  }
}
