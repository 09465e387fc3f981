/**
 * The data files hold accounts, webhook URLs, masked phones and sealed codes: only the service's own
 * user reads them, also when the data directory existed before with a wider mode (`mkdir -p`, a
 * container volume), where the directory's own mode protects nothing.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ready, startApiProcess, stopApiProcess } from './api-process.js';

it('narrows a file an earlier version left readable by others (SQLite gives its -wal and -shm its mode)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-modes-old-'));
  chmodSync(dir, 0o755);
  // An empty file is an empty SQLite database: as an older version, before the umask, created it.
  writeFileSync(join(dir, 'nexo.db'), '');
  chmodSync(join(dir, 'nexo.db'), 0o644);
  const port = await freePort();
  const child = startApiProcess(dir, port);
  try {
    await ready(`http://127.0.0.1:${port}`);
  } finally {
    await stopApiProcess(child);
  }
  try {
    const files = readdirSync(dir).filter((f) => f.startsWith('nexo.db'));
    expect(files).toEqual(expect.arrayContaining(['nexo.db']));
    expect(files.map((name) => ({ name, mode: statSync(join(dir, name)).mode & 0o777 }))).toEqual(files.map((name) => ({ name, mode: 0o600 })));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('creates every file in an existing 0755 data directory readable by its user alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-modes-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const child = startApiProcess(dir, port);
  try {
    await ready(`http://127.0.0.1:${port}`);
    const signup = await fetch(`http://127.0.0.1:${port}/api/v1/signup`, { method: 'POST' });
    expect(signup.status).toBe(201);
  } finally {
    await stopApiProcess(child);
  }
  try {
    const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
    expect(files.map((f) => f.name)).toEqual(expect.arrayContaining(['nexo.db', 'read-models.db', 'state.db', 'secrets.json']));
    const open = files.map((f) => join(f.parentPath, f.name)).filter((f) => (statSync(f).mode & 0o077) !== 0);
    expect(open).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
