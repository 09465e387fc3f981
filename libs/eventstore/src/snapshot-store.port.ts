/**
 * The SnapshotStore port: the latest written-down state of a stream, kept beside the log so that
 * loading a long stream folds only what came after it. A cache, never a source of truth: a
 * snapshot names the event it was taken at (revision and id), and one that does not match the
 * stream as it is now (another log, a stream rewritten) is ignored and the stream folded whole.
 */
export interface StoredSnapshot {
  /** Revision of the last event folded into the state. */
  revision: bigint;
  /** Id of that event: what tells this stream's history from another's with the same name. */
  eventId: string;
  /** The codec's format version. */
  version: number;
  /** The codec's encoding (plain JSON). */
  state: unknown;
}

export interface SnapshotStore {
  load(streamId: string): Promise<StoredSnapshot | undefined>;
  /** Replaces the stream's snapshot. */
  save(streamId: string, snapshot: StoredSnapshot): Promise<void>;
}
